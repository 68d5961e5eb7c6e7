"""Contracts end to end, read from the code: every message between processes is a model from
`contracts.py` where it is sent and where it is consumed — no service takes it as a dict, and no
`.get(` reads a field of one (mypy strict proves the typed reads; this keeps the code from slipping
back to dicts, where mypy could not look)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, get_type_hints

from livemigrate import contracts
from livemigrate.agent.runner import JobRunner
from livemigrate.agent.shared_job import SharedJobRunner
from livemigrate.atlas.links import available_projects
from livemigrate.atlas.migration_progress import record_progress
from livemigrate.atlas.validations import record_preflight
from livemigrate.client.agent_api import AgentApi
from livemigrate.client.link_channel import LinkChannel
from livemigrate.cloud_manager.job_relay import JobRelay

SOURCE = Path(__file__).resolve().parent.parent / "src" / "livemigrate"
MESSAGES = {name for name, value in vars(contracts).items()
            if inspect.isclass(value) and issubclass(value, contracts.Contract) and value is not contracts.Contract}


def _annotation_names(annotation: ast.expr | None) -> set[str]:
    return {node.id for node in ast.walk(annotation) if isinstance(node, ast.Name)} if annotation else set()


def _reads_by_get(root: Path = SOURCE) -> list[str]:
    """`x.get(` where `x` is a parameter annotated with a message, or a name bound to a message turned
    into a dict (`.to_json()`, `.model_dump()`) in the same function."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "contracts.py":
            continue
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            arguments = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
            messages = {argument.arg for argument in arguments if _annotation_names(argument.annotation) & MESSAGES}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                        and isinstance(node.value.func, ast.Attribute) \
                        and node.value.func.attr in ("to_json", "model_dump"):
                    messages |= {target.id for target in node.targets if isinstance(target, ast.Name)}
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                    read = node.func.value
                    if isinstance(read, ast.Name) and read.id in messages:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {read.id}.get(")
                    if isinstance(read, ast.Call) and isinstance(read.func, ast.Attribute) \
                            and read.func.attr in ("to_json", "model_dump"):
                        found.append(f"{path.relative_to(root)}:{node.lineno} .{read.func.attr}().get(")
    return found


def test_no_field_of_a_message_is_read_with_get() -> None:
    assert _reads_by_get() == []


def _hint(function: Any, name: str) -> Any:
    return get_type_hints(function)[name]


def test_the_services_that_send_and_consume_messages_take_models() -> None:
    assert _hint(record_progress, "report") is contracts.ProgressReport
    assert _hint(record_preflight, "report") is contracts.ProgressReport
    assert _hint(JobRelay.report_progress, "report") is contracts.ProgressReport
    assert _hint(JobRelay.report_progress, "return") is contracts.ReportAnswer
    assert _hint(LinkChannel.report_progress, "return") is contracts.ReportAnswer
    assert _hint(AgentApi.report, "report") is contracts.ProgressReport
    assert _hint(AgentApi.report, "return") is contracts.ReportAnswer
    assert _hint(AgentApi.hold_leases, "asked") is contracts.LeaseRequest
    assert _hint(AgentApi.hold_leases, "return") is contracts.LeaseGrant
    assert _hint(AgentApi.heartbeat, "beat") is contracts.Heartbeat
    assert _hint(JobRunner.report, "return") is contracts.ProgressReport
    assert _hint(SharedJobRunner.report, "return") is contracts.ProgressReport
    assert _hint(available_projects, "return") == list[contracts.InventoryProject]


def test_the_check_sees_a_report_read_as_a_dict(tmp_path: Path) -> None:
    """The rule bites: consumers written the old way are found."""
    (tmp_path / "consumer.py").write_text(
        "def record(report: ProgressReport | None) -> None:\n    report.get('status')\n"
        "def send(report: ProgressReport) -> None:\n    sent = report.to_json()\n    sent.get('status')\n"
        "def relay(answer: ReportAnswer) -> None:\n    answer.model_dump().get('cutoverRequested')\n")
    assert _reads_by_get(tmp_path) == ["consumer.py:2 report.get(", "consumer.py:5 sent.get(",
                                       "consumer.py:7 .model_dump().get("]
