"""Findings and the diagnosis: serialized to JSON and back, and shown as Markdown."""

import json

import trainwell as tw
from helpers import selu_stack
from trainwell.doctor.findings import Diagnosis
from trainwell.doctor.selfnorm import check_self_normalization


def test_diagnosis_serializes():
    diagnosis = Diagnosis(check_self_normalization(selu_stack(tw.Dropout(0.2)), scaling="unit"), {"name": "x"})
    again = Diagnosis.from_dict(json.loads(json.dumps(diagnosis.to_dict())))
    assert again == diagnosis
    markdown = diagnosis.to_markdown()
    assert markdown.count("\n") == 3 and "Dropout instead of AlphaDropout" in markdown and "input" in markdown
