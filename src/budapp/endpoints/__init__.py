"""Endpoints: a model served by a runtime on a cluster, deployed by workflows."""
