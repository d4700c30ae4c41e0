"""What every client of pyrollouts shares, below the CLI, the local server and the dashboard.

``verbs``: each user verb once (its arguments, patches, message and errors) over any Cluster;
``info``: the info view of a Rollout; ``guard``: the checks every HTTP face makes of a request (host,
peer, token, write); ``streams``: the cap on open event streams.
"""
