"""Routers: a project's named routes over several targets; the name is what gateway clients
send as `model`."""
