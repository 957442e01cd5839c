"""Task mapping: lossless round trips, valid output, and tolerance for Tasks we did not write."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.task import Task

import bridge.fhir
from bridge.domain import (
    AssignmentData,
    Barrier,
    BusinessStatus,
    CompletionData,
    CompletionStatus,
    TaskStatus,
)
from bridge.fhir import (
    assignment_to_task,
    execution_period,
    external_id_from_reference,
    task_from_json,
    task_identifier_system,
    task_to_assignment,
    task_to_json,
    with_business_status,
)
from bridge.fhir.task import (
    ASSIGNMENT_TYPE_SYSTEM,
    BUSINESS_STATUS_SYSTEM,
    INPUT_SYSTEM,
    LIBRARY_SYSTEM,
    OUTPUT_SYSTEM,
    TASK_IDENTIFIER_PREFIX,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"
EST = timezone(timedelta(hours=-5))
IST = timezone(timedelta(hours=5, minutes=30))

MINIMAL = AssignmentData(
    external_id="asg-1",
    patient_external_id="pat-1",
    clinician_external_id=None,
    type_code="thought-record",
    title="Thought record",
    assigned_at=datetime(2024, 3, 1, 9, 30, tzinfo=UTC),
)

FULL = AssignmentData(
    external_id="asg-2",
    patient_external_id="eM5CWtq15N0WJeuCet5bJlQ3",
    clinician_external_id="prac.77",
    type_code="behavioural-activation",
    title="Walk after dinner",
    assigned_at=datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=EST),
    due_at=datetime(2024, 3, 8, 23, 59, 59, tzinfo=IST),
    instructions="Walk for 20 minutes.\nNote your mood before and after (0-10).",
    repetitions=5,
    frequency="daily",
    duration="20 min",
    success_criteria="Mood rating logged each time",
    status=TaskStatus.in_progress,
)

SPANISH = AssignmentData(
    external_id="asg-ñ-3",
    patient_external_id="pac-3",
    clinician_external_id="médico-9",
    type_code="exposición",
    title="Exposición gradual: subir en ascensor 🛗",
    assigned_at=datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    due_at=datetime(2025, 1, 7, 12, 0, tzinfo=UTC),
    instructions="Sube al 3.er piso; anota tu ansiedad (0–100) «antes» y «después».",
    frequency="tres veces por semana",
    duration="15 minutos",
    success_criteria="Ansiedad < 30 al terminar",
)

COMPLETION_FULL = CompletionData(
    status=CompletionStatus.partial,
    source="sms",
    reported_at=datetime(2024, 3, 5, 20, 15, 1, 500, tzinfo=EST),
    quantity=0,
    quality=4,
    barriers=(Barrier.too_hard, Barrier.forgot, Barrier.other),
    reflection="Harder than I thought — did it twice.",
)

COMPLETION_MINIMAL = CompletionData(
    status=CompletionStatus.not_done,
    source="portal",
    reported_at=datetime(2024, 3, 9, 8, 0, tzinfo=UTC),
)

COMPLETION_SPANISH = CompletionData(
    status=CompletionStatus.done,
    source="correo",
    reported_at=datetime(2025, 1, 2, 7, 0, tzinfo=UTC),
    quantity=3,
    quality=9,
    barriers=(Barrier.no_opportunity,),
    reflection="¡Lo logré! Menos miedo de lo que esperaba.",
)

ROUND_TRIPS = [
    pytest.param(MINIMAL, None, None, id="minimal"),
    pytest.param(FULL, None, BusinessStatus.delivered, id="full"),
    pytest.param(FULL, COMPLETION_FULL, BusinessStatus.reported, id="full-with-completion"),
    pytest.param(MINIMAL, COMPLETION_MINIMAL, None, id="minimal-completion"),
    pytest.param(SPANISH, COMPLETION_SPANISH, BusinessStatus.written_back, id="spanish"),
]


def _assert_utc_equal(got: datetime | None, want: datetime | None) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got == want
    assert got.utcoffset() == timedelta(0)
    assert got.tzinfo is UTC


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _as_json(task: Task) -> dict[str, Any]:
    return json.loads(task_to_json(task))


# -- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize(("assignment", "completion", "business"), ROUND_TRIPS)
def test_round_trip_is_lossless(assignment, completion, business):
    task = assignment_to_task(
        "sandbox", assignment, completion=completion, business_status=business
    )

    assert task_to_assignment(task) == ("sandbox", assignment, completion, business)


@pytest.mark.parametrize(("assignment", "completion", "business"), ROUND_TRIPS)
def test_round_trip_through_json(assignment, completion, business):
    task = assignment_to_task(
        "sandbox", assignment, completion=completion, business_status=business
    )
    text = task_to_json(task)
    expected = ("sandbox", assignment, completion, business)

    assert task_to_assignment(task_from_json(text)) == expected
    assert task_to_assignment(task_from_json(text.encode("utf-8"))) == expected
    assert task_to_assignment(Task.model_validate(json.loads(text))) == expected


@pytest.mark.parametrize(("assignment", "completion", "business"), ROUND_TRIPS)
def test_datetimes_come_back_as_aware_utc(assignment, completion, business):
    task = task_from_json(
        task_to_json(
            assignment_to_task("s", assignment, completion=completion, business_status=business)
        )
    )
    _, got, got_completion, _ = task_to_assignment(task)

    _assert_utc_equal(got.assigned_at, assignment.assigned_at)
    _assert_utc_equal(got.due_at, assignment.due_at)
    if completion is not None:
        _assert_utc_equal(got_completion.reported_at, completion.reported_at)


@pytest.mark.parametrize(("assignment", "completion", "business"), ROUND_TRIPS)
def test_emitted_task_revalidates(assignment, completion, business):
    task = assignment_to_task(
        "sandbox",
        assignment,
        completion=completion,
        business_status=business,
        type_display="Library entry",
        executed=(datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC)),
    )
    reparsed = Task.model_validate_json(task.model_dump_json())

    assert reparsed.model_dump_json() == task.model_dump_json()
    assert Task.model_validate(json.loads(task.model_dump_json())) == reparsed


@pytest.mark.parametrize("status", list(TaskStatus))
def test_every_task_status_round_trips(status):
    assignment = replace(MINIMAL, status=status)
    task = assignment_to_task("sandbox", assignment)

    assert task.status == status.value
    assert task_to_assignment(task)[1] == assignment


@pytest.mark.parametrize("business", list(BusinessStatus))
def test_every_business_status_round_trips(business):
    task = assignment_to_task("sandbox", MINIMAL, business_status=business)

    assert _as_json(task)["businessStatus"] == {
        "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": business.value}]
    }
    assert task_to_assignment(task)[3] is business


def test_barriers_keep_order_and_repeats():
    completion = replace(
        COMPLETION_MINIMAL, barriers=(Barrier.other, Barrier.avoided, Barrier.other)
    )
    task = assignment_to_task("sandbox", MINIMAL, completion=completion)

    assert task_to_assignment(task)[2].barriers == (Barrier.other, Barrier.avoided, Barrier.other)


def test_connector_name_may_contain_colons_and_dots():
    task = assignment_to_task("epic:prod.v2", MINIMAL)

    assert task.identifier[0].system == "urn:homework-bridge:connector:epic:prod.v2"
    assert task_to_assignment(task)[0] == "epic:prod.v2"


# -- shape ---------------------------------------------------------------------------


def test_full_task_shape():
    task = assignment_to_task(
        "sandbox",
        FULL,
        completion=COMPLETION_FULL,
        business_status=BusinessStatus.reported,
        type_display="Behavioural activation",
        executed=(datetime(2024, 3, 2, 18, 0, tzinfo=EST), None),
    )
    body = _as_json(task)

    assert body["resourceType"] == "Task"
    assert body["identifier"] == [{"system": TASK_IDENTIFIER_PREFIX + "sandbox", "value": "asg-2"}]
    assert body["status"] == "in-progress"
    assert body["intent"] == "order"
    assert body["code"] == {
        "coding": [
            {
                "system": ASSIGNMENT_TYPE_SYSTEM,
                "code": "behavioural-activation",
                "display": "Behavioural activation",
            }
        ]
    }
    assert body["description"] == "Walk after dinner"
    assert body["focus"] == {
        "identifier": {"system": LIBRARY_SYSTEM, "value": "behavioural-activation"},
        "display": "Behavioural activation",
    }
    assert body["for"] == {"reference": "Patient/eM5CWtq15N0WJeuCet5bJlQ3"}
    assert body["owner"] == body["for"]
    assert body["requester"] == {"reference": "Practitioner/prac.77"}
    assert body["authoredOn"] == "2024-03-01T14:30:15.123456Z"
    assert body["restriction"] == {"repetitions": 5, "period": {"end": "2024-03-08T18:29:59Z"}}
    assert body["executionPeriod"] == {"start": "2024-03-02T23:00:00Z"}
    assert body["businessStatus"] == {
        "coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": "reported"}]
    }
    assert [
        (i["type"]["coding"][0]["system"], i["type"]["coding"][0]["code"], i["valueString"])
        for i in body["input"]
    ] == [
        (INPUT_SYSTEM, "instructions", FULL.instructions),
        (INPUT_SYSTEM, "frequency", "daily"),
        (INPUT_SYSTEM, "duration", "20 min"),
        (INPUT_SYSTEM, "success-criteria", "Mood rating logged each time"),
    ]
    outputs = [
        (o["type"]["coding"][0]["system"], o["type"]["coding"][0]["code"], o)
        for o in body["output"]
    ]
    assert all(system == OUTPUT_SYSTEM for system, _, _ in outputs)
    values = [
        (code, {k: v for k, v in o.items() if k.startswith("value")}) for _, code, o in outputs
    ]
    assert values == [
        ("completion-status", {"valueCode": "partial"}),
        ("source", {"valueString": "sms"}),
        ("reported-at", {"valueDateTime": "2024-03-06T01:15:01.000500Z"}),
        ("quantity", {"valueInteger": 0}),
        ("quality", {"valueInteger": 4}),
        ("barrier", {"valueCode": "too_hard"}),
        ("barrier", {"valueCode": "forgot"}),
        ("barrier", {"valueCode": "other"}),
        ("reflection", {"valueString": "Harder than I thought — did it twice."}),
    ]


def test_focus_display_falls_back_to_title_and_code_has_no_display():
    body = _as_json(assignment_to_task("sandbox", MINIMAL))

    assert body["focus"] == {
        "identifier": {"system": LIBRARY_SYSTEM, "value": "thought-record"},
        "display": "Thought record",
    }
    assert body["code"] == {
        "coding": [{"system": ASSIGNMENT_TYPE_SYSTEM, "code": "thought-record"}]
    }


def test_minimal_task_omits_absent_fields():
    body = _as_json(assignment_to_task("sandbox", MINIMAL))

    assert set(body) == {
        "resourceType",
        "identifier",
        "status",
        "intent",
        "code",
        "description",
        "focus",
        "for",
        "owner",
        "authoredOn",
    }
    assert body["status"] == "requested"


@pytest.mark.parametrize(("assignment", "completion", "business"), ROUND_TRIPS)
def test_no_empty_or_null_values_anywhere(assignment, completion, business):
    body = _as_json(
        assignment_to_task("sandbox", assignment, completion=completion, business_status=business)
    )

    for node in _walk(body):
        assert node is not None
        assert node != ""
        assert node != []
        assert node != {}


def test_empty_optional_strings_are_omitted_and_read_back_as_none():
    assignment = replace(MINIMAL, clinician_external_id="", instructions="", frequency="")
    completion = replace(COMPLETION_MINIMAL, reflection="")
    task = assignment_to_task("sandbox", assignment, completion=completion)
    body = _as_json(task)

    assert "requester" not in body
    assert "input" not in body
    assert "reflection" not in {o["type"]["coding"][0]["code"] for o in body["output"]}
    _, got, got_completion, _ = task_to_assignment(task)
    assert got == MINIMAL
    assert got_completion == COMPLETION_MINIMAL


def test_whitespace_in_text_is_preserved():
    assignment = replace(MINIMAL, title="  padded title  ", instructions="line 1\n\tline 2\n")
    task = task_from_json(task_to_json(assignment_to_task("sandbox", assignment)))

    assert task_to_assignment(task)[1] == assignment


def test_task_to_json_is_compact_and_unescaped():
    text = task_to_json(assignment_to_task("sandbox", SPANISH))

    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    assert "null" not in text
    assert "Exposición gradual: subir en ascensor 🛗" in text
    assert '"for":{"reference":"Patient/pac-3"}' in text


# -- execution period ----------------------------------------------------------------


def test_execution_period_round_trips():
    start = datetime(2024, 3, 2, 18, 0, tzinfo=EST)
    end = datetime(2024, 3, 2, 18, 20, 30, tzinfo=EST)
    open_task = assignment_to_task("sandbox", MINIMAL, executed=(start, None))
    closed_task = task_from_json(
        task_to_json(assignment_to_task("sandbox", MINIMAL, executed=(start, end)))
    )

    assert execution_period(open_task) == (start, None)
    got_start, got_end = execution_period(closed_task)
    _assert_utc_equal(got_start, start)
    _assert_utc_equal(got_end, end)
    assert execution_period(assignment_to_task("sandbox", MINIMAL)) is None


def test_execution_end_before_start_is_refused():
    start = datetime(2024, 3, 2, tzinfo=UTC)

    with pytest.raises(ValueError, match="before its start"):
        assignment_to_task("sandbox", MINIMAL, executed=(start, start - timedelta(seconds=1)))


# -- refusals when writing -----------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"assigned_at": datetime(2024, 3, 1, 9, 30)}, id="naive-assigned"),
        pytest.param({"due_at": datetime(2024, 3, 8)}, id="naive-due"),
        pytest.param({"external_id": ""}, id="empty-external-id"),
        pytest.param({"title": ""}, id="empty-title"),
        pytest.param({"type_code": ""}, id="empty-type"),
        pytest.param({"patient_external_id": ""}, id="empty-patient"),
        pytest.param({"patient_external_id": "a/b"}, id="slash-in-patient"),
        pytest.param({"patient_external_id": "a b"}, id="space-in-patient"),
        pytest.param({"clinician_external_id": "x?y"}, id="query-in-clinician"),
        pytest.param({"repetitions": 0}, id="zero-repetitions"),
    ],
)
def test_unrepresentable_assignments_are_refused(change):
    with pytest.raises(ValueError):
        assignment_to_task("sandbox", replace(MINIMAL, **change))


def test_naive_reported_at_is_refused():
    completion = replace(COMPLETION_MINIMAL, reported_at=datetime(2024, 3, 9, 8, 0))

    with pytest.raises(ValueError, match="reported_at must be timezone-aware"):
        assignment_to_task("sandbox", MINIMAL, completion=completion)


@pytest.mark.parametrize("connector", ["", "has space", "tab\there"])
def test_bad_connector_names_are_refused(connector):
    with pytest.raises(ValueError, match="connector name"):
        assignment_to_task(connector, MINIMAL)
    with pytest.raises(ValueError, match="connector name"):
        task_identifier_system(connector)


# -- references ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", "123"),
        ("Patient/123/", "123"),
        ("https://x/fhir/Patient/123", "123"),
        ("https://fhir.epic.com/api/FHIR/R4/Patient/eM5CWtq15N0W.J-3", "eM5CWtq15N0W.J-3"),
        ("Patient/123/_history/2", "123"),
        ("https://x/fhir/Patient/123/_history/2", "123"),
        ("Practitioner/_history", "_history"),
    ],
)
def test_external_id_from_reference(ref, expected):
    assert external_id_from_reference(ref) == expected


@pytest.mark.parametrize(
    "ref", ["", "123", "#contained", "Patient?identifier=x|1", "/123", "Patient/"]
)
def test_external_id_from_reference_refuses_non_literal_references(ref):
    with pytest.raises(ValueError, match="not a literal resource reference"):
        external_id_from_reference(ref)


def test_external_id_from_reference_checks_the_type_when_asked():
    assert external_id_from_reference("https://x/Patient/1", expected_type="Patient") == "1"
    with pytest.raises(ValueError, match="expected a Patient reference"):
        external_id_from_reference("Group/1", expected_type="Patient")


# -- reading Tasks we did not write --------------------------------------------------


def _hl7_example() -> Task:
    return task_from_json((FIXTURES / "task-example-hl7.json").read_bytes())


def test_hl7_example_task_validates_and_reserialises():
    task = _hl7_example()

    assert task.id == "example1"
    assert Task.model_validate_json(task_to_json(task)) == task


def test_foreign_task_without_connector_is_refused():
    with pytest.raises(ValueError, match="pass connector="):
        task_to_assignment(_hl7_example())


def test_foreign_task_reads_with_connector_fallback():
    connector, assignment, completion, business = task_to_assignment(
        _hl7_example(), connector="goodhealth"
    )

    assert connector == "goodhealth"
    assert assignment == AssignmentData(
        external_id="20170201-001",
        patient_external_id="example",
        clinician_external_id="example",
        type_code="Lipid Panel",
        title=(
            "Create order for getting specimen, Set up inhouse testing,  "
            "generate order for any sendouts and submit with specimen"
        ),
        assigned_at=datetime(2016, 10, 30, 22, 25, 5, tzinfo=UTC),
        due_at=datetime(2016, 11, 1, 23, 45, 5, tzinfo=UTC),
        repetitions=1,
        status=TaskStatus.in_progress,
    )
    assert completion is None
    assert business is None  # free-text businessStatus is not in the bridge's funnel
    assert execution_period(_hl7_example()) == (datetime(2016, 10, 30, 22, 25, 5, tzinfo=UTC), None)


def test_foreign_task_without_identifier_uses_its_id():
    body = json.loads((FIXTURES / "task-example-hl7.json").read_text())
    del body["identifier"]

    assert task_to_assignment(Task.model_validate(body), connector="x")[1].external_id == "example1"


def _foreign(**changes: Any) -> Task:
    body: dict[str, Any] = {
        "resourceType": "Task",
        "id": "t1",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": "http://example.org/hw", "code": "journal"}]},
        "description": "Journal",
        "for": {"reference": "Patient/p9"},
        "authoredOn": "2024-05-06",
    }
    body.update(changes)
    return Task.model_validate({k: v for k, v in body.items() if v is not None})


def test_foreign_task_leniencies():
    _, assignment, _, _ = task_to_assignment(
        _foreign(description=None, code={"text": "Daily journal"}), connector="x"
    )

    assert assignment.external_id == "t1"
    assert assignment.type_code == "Daily journal"
    assert assignment.title == "Daily journal"
    assert assignment.assigned_at == datetime(2024, 5, 6, tzinfo=UTC)
    assert task_to_assignment(_foreign(), connector="x")[1].type_code == "journal"


def test_foreign_task_with_logical_patient_reference():
    task = _foreign(**{"for": {"identifier": {"system": "urn:mrn", "value": "MRN-1"}}})

    assert task_to_assignment(task, connector="x")[1].patient_external_id == "MRN-1"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"status": "draft"}, "no bridge equivalent"),
        ({"status": "on-hold"}, "no bridge equivalent"),
        ({"for": {"reference": "Group/g1"}}, "expected a Patient reference"),
        ({"for": None}, "no 'for'"),
        ({"authoredOn": None}, "no authoredOn"),
        ({"authoredOn": "2024-05"}, "not a full date"),
        ({"code": None, "description": "x"}, "no assignment type"),
        ({"code": {"coding": [{"system": "urn:x", "code": "c"}]}, "description": None}, "title"),
    ],
)
def test_foreign_task_refusals(changes, message):
    with pytest.raises(ValueError, match=message):
        task_to_assignment(_foreign(**changes), connector="x")


def test_bridge_identifier_wins_over_connector_fallback():
    task = assignment_to_task("sandbox", MINIMAL)

    assert task_to_assignment(task, connector="other")[0] == "sandbox"


def test_connector_keyword_picks_among_several_bridge_identifiers():
    body = _as_json(assignment_to_task("sandbox", MINIMAL))
    body["identifier"].insert(0, {"system": "http://ehr.example/ids", "value": "ehr-77"})
    body["identifier"].append({"system": TASK_IDENTIFIER_PREFIX + "epic", "value": "E-9"})
    task = Task.model_validate(body)

    assert task_to_assignment(task)[:2] == ("sandbox", MINIMAL)
    connector, assignment, _, _ = task_to_assignment(task, connector="epic")
    assert (connector, assignment.external_id) == ("epic", "E-9")


def test_non_bridge_inputs_and_outputs_are_ignored():
    body = _as_json(assignment_to_task("sandbox", FULL, completion=COMPLETION_FULL))
    foreign = {"type": {"coding": [{"system": "urn:other", "code": "x"}]}, "valueString": "y"}
    body["input"].append(foreign)
    body["output"].insert(0, foreign)

    assert task_to_assignment(Task.model_validate(body))[1:3] == (FULL, COMPLETION_FULL)


def _output(code: str, **value: Any) -> dict[str, Any]:
    return {"type": {"coding": [{"system": OUTPUT_SYSTEM, "code": code}]}, **value}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda out: out.pop(1), r"missing \['source'\]"),
        (lambda out: out.append(_output("mood", valueString="x")), "unknown bridge Task.output"),
        (lambda out: out.append(_output("source", valueString="x")), "duplicate"),
        (lambda out: out.append(_output("quality", valueString="5")), "valueInteger"),
        (lambda out: out.append(_output("barrier", valueCode="tired")), "unknown code"),
        (lambda out: out.__setitem__(0, _output("completion-status", valueCode="maybe")), "code"),
    ],
)
def test_corrupt_bridge_outputs_are_refused(mutate, message):
    body = _as_json(assignment_to_task("sandbox", MINIMAL, completion=COMPLETION_MINIMAL))
    mutate(body["output"])

    with pytest.raises(ValueError, match=message):
        task_to_assignment(Task.model_validate(body))


def test_outputs_without_the_required_trio_are_refused():
    body = _as_json(assignment_to_task("sandbox", MINIMAL))
    body["output"] = [_output("barrier", valueCode="forgot")]

    with pytest.raises(ValueError, match="missing"):
        task_to_assignment(Task.model_validate(body))


def test_corrupt_bridge_inputs_and_business_status_are_refused():
    body = _as_json(assignment_to_task("sandbox", FULL))
    body["input"].append(body["input"][0])
    with pytest.raises(ValueError, match="duplicate bridge Task.input"):
        task_to_assignment(Task.model_validate(body))

    body = _as_json(assignment_to_task("sandbox", MINIMAL))
    body["businessStatus"] = {"coding": [{"system": BUSINESS_STATUS_SYSTEM, "code": "lost"}]}
    with pytest.raises(ValueError, match="unknown bridge businessStatus"):
        task_to_assignment(Task.model_validate(body))


def test_package_exports():
    for name in bridge.fhir.__all__:
        assert callable(getattr(bridge.fhir, name))


@pytest.mark.parametrize(("assignment", "completion", "business"), ROUND_TRIPS)
@pytest.mark.parametrize("new", [None, *BusinessStatus])
def test_editing_business_status_in_json_equals_rebuilding_the_task(
    assignment, completion, business, new
):
    before = assignment_to_task("sandbox", assignment, completion=completion,
                                business_status=business)  # fmt: skip
    rebuilt = assignment_to_task("sandbox", assignment, completion=completion,
                                 business_status=new)  # fmt: skip

    edited = with_business_status(task_to_json(before), new)

    assert task_from_json(edited) == rebuilt
    assert json.loads(edited) == _as_json(rebuilt)
    compact = json.dumps(json.loads(edited), ensure_ascii=False, separators=(",", ":"))
    assert edited == compact  # compact and unescaped, as stored
