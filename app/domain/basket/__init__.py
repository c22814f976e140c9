"""The basket context's aggregate: one basket per customer."""
