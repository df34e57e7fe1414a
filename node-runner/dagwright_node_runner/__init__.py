"""node-runner: runs a node's command inside its pod and carries its outputs and progress out.

See `dagwright.nodeio` for the contract and `runner.main` for the program.
"""
