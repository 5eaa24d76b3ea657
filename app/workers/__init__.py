"""The processes that send: the in-process loop beside the API (SQLite) and the procrastinate
workers of ``shodaku worker`` (PostgreSQL). An entry point, like the API and the CLI: it wires
the sending machinery to the campaigns it starts, and nothing below imports it."""
