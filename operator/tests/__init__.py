"""Unit tests of iot_operator (a package so pytest does not shadow the stdlib `operator` module)."""
