"""Small builders for domain data used across tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge.domain import AssignmentData, ClinicianData, PatientData

CLINICIAN = ClinicianData("dr-1", "Dr. Ana Reyes")


def patient(ext: str = "p1", phone: str | None = "+13125550101", **kw) -> PatientData:
    return PatientData(ext, kw.pop("name", "Alex Client"), phone=phone, **kw)


def assignment(
    ext: str, assigned_at: datetime, days: float = 7, patient_ext: str = "p1", **kw
) -> AssignmentData:
    return AssignmentData(
        external_id=ext,
        patient_external_id=patient_ext,
        clinician_external_id=kw.pop("clinician", CLINICIAN.external_id),
        type_code=kw.pop("type_code", "thought_record"),
        title=kw.pop("title", "Thought record about work stress"),
        assigned_at=assigned_at,
        due_at=kw.pop("due_at", assigned_at + timedelta(days=days)),
        repetitions=kw.pop("repetitions", 3),
        frequency=kw.pop("frequency", "3 times a week"),
        **kw,
    )


def seed(ehr, *patients: PatientData) -> None:
    ehr.add_clinician(CLINICIAN)
    for p in patients or (patient(),):
        ehr.add_patient(p)
