"""``qc evaluate`` (``lis qc evaluate``): JSON contract, text table, rule options and input errors.

Error messages name the CSV line (header = line 1) and the 1-based data row; exit code 2, no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qc.cli import evaluate, qc

HEADER = "run,material,lot,value,mean,sd\n"
GOOD = HEADER + "".join(
    [
        "1,L1,A,102.2,100,1.1\n",  # exactly +2 SD: nothing
        "1,L2,B,50,50,2\n",
        "2,L1,A,103.4,100,1.1\n",  # +3.09 SD: 1_3s, 1_2s, and 2_2s with L2
        "2,L2,B,54.5,50,2\n",  # +2.25 SD
        "3,L1,A,100.5,100,1.1\n",
        "3,L2,B,49,50,2\n",
        "4,L1,A,102.5,100,1.1\n",  # 1_2s only: warning
        "4,L2,B,51,50,2\n",
    ]
)


def write(tmp_path: Path, text: str, name: str = "qc.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_json_contract(tmp_path):
    res = CliRunner().invoke(evaluate, [str(write(tmp_path, GOOD)), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == [
        {"run": "1", "decision": "accept", "violations": []},
        {"run": "2", "decision": "reject", "violations": ["1_2s", "1_3s", "2_2s"]},
        {"run": "3", "decision": "accept", "violations": []},
        {"run": "4", "decision": "warning", "violations": ["1_2s"]},
    ]


def test_group_command_and_text_format(tmp_path):
    res = CliRunner().invoke(qc, ["evaluate", str(write(tmp_path, GOOD))])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["run", "decision", "violations"]
    assert lines[2].split() == ["2", "reject", "1_2s,", "1_3s,", "2_2s"]
    assert "4 runs: 2 accepted, 1 with warning, 1 rejected" in res.output


def test_warning_rules_are_added_to_rules(tmp_path):
    rows = HEADER + "".join(f"{i},L1,A,{100 + i},100,10\n{i},L2,A,{100 - i},100,10\n" for i in range(1, 8))
    path = str(write(tmp_path, rows))
    res = CliRunner().invoke(evaluate, [path, "--rules", "1_3s", "--format", "json"])
    assert [r["violations"] for r in json.loads(res.output)][-1] == ["7_T"]  # default warning rules
    res = CliRunner().invoke(evaluate, [path, "--rules", "1_3s", "--warning-rules", "", "--format", "json"])
    assert all(r["decision"] == "accept" for r in json.loads(res.output))
    res = CliRunner().invoke(evaluate, [path, "--rules", "7_T", "--warning-rules", "", "--format", "json"])
    assert json.loads(res.output)[-1]["decision"] == "reject"


def test_no_reset_on_reject(tmp_path):
    rows = HEADER + "1,L1,A,135,100,10\n1,L2,A,115,100,10\n2,L1,A,115,100,10\n2,L2,A,115,100,10\n"
    path = str(write(tmp_path, rows))
    default = json.loads(CliRunner().invoke(evaluate, [path, "--format", "json"]).output)
    assert [r["decision"] for r in default] == ["reject", "accept"]
    no_reset = json.loads(
        CliRunner().invoke(evaluate, [path, "--no-reset-on-reject", "--format", "json"]).output
    )
    assert no_reset[1] == {"run": "2", "decision": "reject", "violations": ["4_1s"]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1,L1,A,100,100,0\n", "line 2 (data row 1): target SD must be > 0"),
        ("1,L1,A,100,100,1\n1,L2,A,100,100,-1\n", "line 3 (data row 2): target SD must be > 0"),
        ("1,L1,A,100,,1\n", "line 2 (data row 1): missing target mean"),
        ("1,L1,A,100,100,1\n2,L1,A,<0.1,100,1\n", "line 3 (data row 2): value '<0.1' is not a number"),
        ("1,L1,A,----,100,1\n", "line 2 (data row 1): value '----' is not a number"),
        ("1,L1,A,100,100,1\n2,L1,A,100,100,1\n1,L2,A,100,100,1\n", "line 4 (data row 3): run '1' reappears"),
        ("1,L1,A,nan,100,1\n", "line 2 (data row 1): value 'nan' is not a number"),
    ],
)
def test_bad_input_names_the_line(tmp_path, body, message):
    res = CliRunner().invoke(evaluate, [str(write(tmp_path, HEADER + body)), "--format", "json"])
    assert res.exit_code == 2
    assert message in res.stderr
    assert "Traceback" not in res.output + res.stderr
    assert res.stdout == ""


def test_missing_column_and_unknown_rule(tmp_path):
    res = CliRunner().invoke(evaluate, [str(write(tmp_path, "run,material,value,mean,sd\n1,L1,1,1,1\n"))])
    assert res.exit_code == 2 and "line 1 (header): missing column(s): lot" in res.stderr
    res = CliRunner().invoke(evaluate, [str(write(tmp_path, GOOD)), "--rules", "1_3s,13s"])
    assert res.exit_code == 2 and "unknown rule name '13s'" in res.stderr
    res = CliRunner().invoke(evaluate, [str(write(tmp_path, GOOD)), "--warning-rules", "7t"])
    assert res.exit_code == 2 and "unknown warning rule name '7t'" in res.stderr
    res = CliRunner().invoke(evaluate, [str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "cannot read" in res.stderr


def test_optional_analyte_column(tmp_path):
    rows = (
        "analyte,run,material,lot,value,mean,sd\nGLU,1,L1,A,125,100,10\nNA,1,L1,A,100,100,10\n"
        "GLU,2,L1,A,125,100,10\nNA,2,L1,A,100,100,10\n"
    )
    res = CliRunner().invoke(evaluate, [str(write(tmp_path, rows)), "--format", "json"])
    assert json.loads(res.output) == [
        {"analyte": "GLU", "run": "1", "decision": "warning", "violations": ["1_2s"]},
        {"analyte": "NA", "run": "1", "decision": "accept", "violations": []},
        {"analyte": "GLU", "run": "2", "decision": "reject", "violations": ["1_2s", "2_2s"]},
        {"analyte": "NA", "run": "2", "decision": "accept", "violations": []},
    ]


def _python_m_qc(*args: str) -> subprocess.CompletedProcess[str]:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "qc", *args], capture_output=True, text=True, cwd=root, timeout=60, check=False
    )


def test_python_m_qc_json(tmp_path):
    proc = _python_m_qc("evaluate", str(write(tmp_path, GOOD)), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [set(r) for r in out] == [{"run", "decision", "violations"}] * 4
    assert [r["decision"] for r in out] == ["accept", "reject", "accept", "warning"]


def test_python_m_qc_bad_input(tmp_path):
    proc = _python_m_qc("evaluate", str(write(tmp_path, HEADER + "1,L1,A,1,1,1\n2,L1,A,<0.1,1,1\n")))
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("line 3 (data row 2): value '<0.1' is not a number")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
