"""The ordering context: buyer profiles (delivery address) and orders built from a basket."""
