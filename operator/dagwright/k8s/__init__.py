"""The Kubernetes backend: a kopf operator that carries out the planner's decisions as Jobs.

Only this package imports kopf and the kubernetes client; the core (model, graph, planner) knows nothing of it.
"""
