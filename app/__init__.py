"""Bookworm: an event-sourced CQRS GraphQL back end for an online bookstore."""
