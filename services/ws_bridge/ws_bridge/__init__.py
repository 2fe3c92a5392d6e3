"""The websocket/HTTP bridge: tails the stream job's topics, serves history from HBase, and the built-in dashboard."""
