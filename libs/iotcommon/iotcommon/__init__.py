"""Shared, stdlib-only building blocks of iotpipe: errors, config, messages, topics, days, HBase layout."""
