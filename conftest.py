"""Root conftest: the real-service fixtures (kafka_service, hbase_service, flink_runtime, unique_name, ...).

`make test PYTEST_WORKERS=2` runs the suite on pytest-xdist workers (`-n 2 --dist loadgroup`; the default, 0, runs it
in one process and nothing here applies). Each worker starts the session fixtures it needs on its own free ports. A
test module is one unit of work (its module-scoped fixtures, such as a pipeline started once for all its tests, then
start once), and the tests that use one of this machine's single resources (the local Kubernetes cluster: heavy, one
per run is enough; podman's image store) form one unit together. The modules with the longest tests (end-to-end,
Flink, cluster, browser, images) are handed out first, so that no worker is left with a long one at the end.
"""

from collections import defaultdict

import pytest

pytest_plugins = ["iotpipe_stack.testing", "iotpipe_stack.kube_testing", "iotpipe_stack.cluster_testing"]

#: the xdist group of the tests that use the fixtures or have the markers below (one group: one worker runs them all)
NODE_GROUP = "node"
_NODE_FIXTURES = frozenset({"kube_cluster"})
_NODE_MARKERS = ("cluster", "images")


def node_bound(item: pytest.Item) -> bool:
    """True if the test uses one of this machine's single resources (the local cluster, podman's image store)."""
    uses = set(getattr(item, "fixturenames", ())) & _NODE_FIXTURES
    return bool(uses) or any(item.get_closest_marker(m) for m in _NODE_MARKERS)


#: markers of the modules handed out first (the longest tests)
_LONG_MARKERS = ("e2e", "flink", "cluster", "browser", "images")


def work_unit(item: pytest.Item) -> str:
    """The xdist group of a test: the node group, or its module."""
    return NODE_GROUP if node_bound(item) else item.nodeid.split("::", 1)[0]


_CONFIG: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG.append(config)
    # xdist registers it too; this keeps --strict-markers happy when xdist is off (-p no:xdist)
    config.addinivalue_line("markers", "xdist_group(name): tests of one group run on one xdist worker")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: one process runs everything in collection order
        return
    long_units = {work_unit(i) for i in items if any(i.get_closest_marker(m) for m in _LONG_MARKERS)}
    items.sort(key=lambda i: work_unit(i) not in long_units)  # stable: the order within each unit is kept
    for item in items:
        item.add_marker(pytest.mark.xdist_group(work_unit(item)))


#: seconds of setup, call and teardown per test module (the summary below; --durations shows single tests)
_MODULE_SECONDS: defaultdict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
_PHASES = ("setup", "call", "teardown")
MODULE_SUMMARY_LINES = 20


#: characters of a failure's report printed at once (its end: the assertion, the service's log tail)
FAILURE_NOW_CHARS = 6000


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _MODULE_SECONDS[report.nodeid.split("::", 1)[0]][_PHASES.index(report.when)] += report.duration
    if report.failed:
        report_failure_now(report)


def report_failure_now(report: pytest.TestReport) -> None:
    """Print a failure as it happens, not only in the summary at the end: a run that dies later (a CI run's pytest
    process once died of a segmentation fault in a C extension, and took the reason of an earlier failure with it)
    still shows why each earlier test failed. The summary repeats it in full."""
    reporter = _CONFIG[0].pluginmanager.get_plugin("terminalreporter") if _CONFIG else None
    if reporter is None:  # an xdist worker: the controller gets the report and prints it
        return
    reporter.write_line("")
    reporter.write_sep("-", f"FAILED {report.nodeid} ({report.when}); the summary at the end repeats it")
    reporter.write_line(report.longreprtext[-FAILURE_NOW_CHARS:])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Where the run's time went, per test module (a module's shared fixtures count in its first test's setup)."""
    if not _MODULE_SECONDS or hasattr(terminalreporter.config, "workerinput"):
        return
    rows = sorted(_MODULE_SECONDS.items(), key=lambda kv: -sum(kv[1]))
    total = sum(sum(v) for v in _MODULE_SECONDS.values())
    terminalreporter.write_sep("=", f"slowest {min(len(rows), MODULE_SUMMARY_LINES)} test modules "
                                    f"(setup / call / teardown s; all modules: {total:.0f} s)")
    for module, (setup, call, teardown) in rows[:MODULE_SUMMARY_LINES]:
        terminalreporter.write_line(f"{setup + call + teardown:8.1f}s  {setup:7.1f} {call:7.1f} {teardown:7.1f}  "
                                    f"{module}")
