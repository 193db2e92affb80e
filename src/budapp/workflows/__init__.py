"""Durable workflows: every long operation (deploy, undeploy, scale, delete) runs as a
workflow on DBOS Transact, with its steps visible over the API."""
