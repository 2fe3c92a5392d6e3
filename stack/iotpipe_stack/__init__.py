"""The local stack manager of iotpipe: installers, a process supervisor, the `iotpipe` CLI and pytest fixtures."""
