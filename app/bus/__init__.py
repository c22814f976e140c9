"""Event bus: relay (event store -> Redis Streams), consumer runner, dead letters, scheduler."""
