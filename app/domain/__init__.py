"""Pure domain: one module per aggregate with state, evolve(state, event) and decide(state, command)."""
