"""nvidia_driver_facts: parsers on recorded nvidia-smi output, main() with a fake nvidia-smi."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any, Dict, Tuple

import nvidia_driver_facts
import pytest
from ansible.module_utils.testing import patch_module_args
from ansible.module_utils.vllm_fleet_nvidia import (
    CSV_QUERY_ARGS,
    FAILURE_COMPUTE_CAP_UNSUPPORTED,
    FAILURE_DRIVER_NOT_LOADED,
    FAILURE_NO_DEVICES,
    FAILURE_OTHER,
    NvidiaSmiParseError,
    classify_smi_failure,
    compute_capability_from_name,
    merge_gpus,
    parse_smi_csv,
    parse_smi_xml,
    sorted_capabilities,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "nvidia"
H200_UUIDS = [
    "GPU-7f988403-5903-d217-3c3a-2a4b5033a999",
    "GPU-3ea74773-32ec-ef55-bae5-78b8526bd102",
]


@pytest.fixture(autouse=True)
def fresh_module_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """module.warn() collects into a process-wide dict; give each test its own."""
    from ansible.module_utils.common import warnings

    monkeypatch.setattr(warnings, "_global_warnings", {})


def read(relative: str) -> str:
    return (DATA / relative).read_text()


def fake_smi(
    tmp_path: Path,
    xml_out: str = "",
    xml_rc: int = 0,
    csv_out: str = "",
    csv_rc: int = 0,
    csv_err: str = "",
) -> Path:
    """An executable nvidia-smi that prints the given text for -q -x and --query-gpu."""
    folder = tmp_path / "fake-smi"
    folder.mkdir()
    (folder / "xml.out").write_text(xml_out)
    (folder / "csv.out").write_text(csv_out)
    (folder / "csv.err").write_text(csv_err)
    script = folder / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{folder}/calls.log"\n'
        'case "$1" in\n'
        f'  -q) cat "{folder}/xml.out"; exit {xml_rc} ;;\n'
        f'  --query-gpu=*) cat "{folder}/csv.out"; cat "{folder}/csv.err" >&2; exit {csv_rc} ;;\n'
        "esac\n"
        'echo "unexpected arguments: $*" >&2\n'
        "exit 99\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def run_main(args: Dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Tuple[int, Dict]:
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        nvidia_driver_facts.main()
    return int(exc.value.code or 0), json.loads(capsys.readouterr().out)


def warnings_text(result: Dict[str, Any]) -> str:
    return json.dumps(result.get("warnings", []))


# --- parsers on recorded output -------------------------------------------------------------


def test_parse_recorded_h200_xml() -> None:
    facts = parse_smi_xml(read("h200x2/nvidia-smi-q-x.xml"))
    assert facts["driver_version"] == "580.159.04"
    assert facts["cuda_max_version"] == "13.0"
    assert facts["attached_gpus"] == 2
    assert facts["gpus"] == [
        {
            "index": 0,
            "name": "NVIDIA H200",
            "uuid": H200_UUIDS[0],
            "memory_mib": 143771,
            "pci_bus_id": "00000000:00:06.0",
        },
        {
            "index": 1,
            "name": "NVIDIA H200",
            "uuid": H200_UUIDS[1],
            "memory_mib": 143771,
            "pci_bus_id": "00000000:00:07.0",
        },
    ]


def test_recorded_xml_has_no_compute_capability() -> None:
    """Why the module needs the CSV query at all."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(read("h200x2/nvidia-smi-q-x.xml"))
    tags = {element.tag for element in root.iter()}
    assert "product_name" in tags
    assert not [tag for tag in tags if "compute_cap" in tag or tag.startswith("cuda_compute")]


def test_parse_recorded_csv_with_header_and_units_equals_noheader_nounits() -> None:
    recorded = parse_smi_csv(read("h200x2/nvidia-smi-query-gpu.csv"))
    derived = parse_smi_csv(read("h200x2/query-gpu-noheader-nounits.csv"))
    assert recorded == derived
    assert [row["uuid"] for row in recorded] == H200_UUIDS
    assert [row["compute_capability"] for row in recorded] == ["9.0", "9.0"]
    assert [row["memory_mib"] for row in recorded] == [143771, 143771]
    assert recorded[1] == {
        "index": 1,
        "name": "NVIDIA H200",
        "uuid": H200_UUIDS[1],
        "driver_version": "580.159.04",
        "memory_mib": 143771,
        "compute_capability": "9.0",
        "pci_bus_id": "00000000:00:07.0",
    }


def test_a100_memory_is_the_gpu_total_not_a_mig_slice() -> None:
    facts = parse_smi_xml(read("a100x1/nvidia-smi-q-x.xml"))
    assert facts["driver_version"] == "535.161.08"
    assert facts["cuda_max_version"] == "12.2"
    assert len(facts["gpus"]) == 1
    assert facts["gpus"][0]["memory_mib"] == 81920
    assert facts["gpus"][0]["name"] == "NVIDIA A100-SXM4-80GB"


def test_mixed_host_merges_by_uuid_and_sorts_capabilities() -> None:
    facts = parse_smi_xml(read("l4-t4-mixed/nvidia-smi-q-x.xml"))
    rows = parse_smi_csv(read("l4-t4-mixed/query-gpu-noheader-nounits.csv"))
    gpus = merge_gpus(facts["gpus"], list(reversed(rows)))
    assert [(g["index"], g["name"], g["compute_capability"]) for g in gpus] == [
        (0, "NVIDIA L4", "8.9"),
        (1, "Tesla T4", "7.5"),
    ]
    assert sorted_capabilities([g["compute_capability"] for g in gpus]) == ["7.5", "8.9"]


def test_capabilities_sort_numerically() -> None:
    assert sorted_capabilities(["9.0", "10.0", "8.9", "9.0", "", "12.0"]) == [
        "8.9",
        "9.0",
        "10.0",
        "12.0",
    ]


def test_csv_parser_rejects_a_short_line() -> None:
    with pytest.raises(NvidiaSmiParseError, match="unexpected nvidia-smi CSV line"):
        parse_smi_csv("0, NVIDIA H200, GPU-x\n")


def test_xml_parser_rejects_non_xml() -> None:
    with pytest.raises(NvidiaSmiParseError, match="valid XML"):
        parse_smi_xml(read("errors/driver-not-loaded.txt"))


@pytest.mark.parametrize(
    ("name", "capability"),
    [
        ("NVIDIA H200", "9.0"),
        ("NVIDIA H100 80GB HBM3", "9.0"),
        ("NVIDIA H100 PCIe", "9.0"),
        ("NVIDIA GH200 480GB", "9.0"),
        ("NVIDIA A100-SXM4-80GB", "8.0"),
        ("NVIDIA A100 80GB PCIe", "8.0"),
        ("NVIDIA A30", "8.0"),
        ("NVIDIA A10", "8.6"),
        ("NVIDIA A10G", "8.6"),
        ("NVIDIA A40", "8.6"),
        ("NVIDIA RTX A6000", "8.6"),
        ("NVIDIA GeForce RTX 3090", "8.6"),
        ("NVIDIA L4", "8.9"),
        ("NVIDIA L40S", "8.9"),
        ("NVIDIA RTX 6000 Ada Generation", "8.9"),
        ("NVIDIA RTX 4000 SFF Ada Generation", "8.9"),
        ("NVIDIA GeForce RTX 4090", "8.9"),
        ("NVIDIA B200", "10.0"),
        ("NVIDIA GB200", "10.0"),
        ("NVIDIA B300", "10.3"),
        ("NVIDIA GeForce RTX 5090", "12.0"),
        ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.0"),
        ("Tesla T4", "7.5"),
        ("Quadro RTX 6000", "7.5"),
        ("NVIDIA GeForce RTX 2080 Ti", "7.5"),
        ("Tesla V100-SXM2-16GB", "7.0"),
        ("Tesla V100S-PCIE-32GB", "7.0"),
    ],
)
def test_compute_capability_from_name(name: str, capability: str) -> None:
    assert compute_capability_from_name(name) == capability


@pytest.mark.parametrize("name", ["Tesla K80", "NVIDIA Future GPU 9000", ""])
def test_unknown_names_have_no_capability(name: str) -> None:
    assert compute_capability_from_name(name) is None


@pytest.mark.parametrize(
    ("relative", "kind"),
    [
        ("errors/driver-not-loaded.txt", FAILURE_DRIVER_NOT_LOADED),
        ("errors/no-devices.txt", FAILURE_NO_DEVICES),
        ("v100-old-driver/query-gpu-error.txt", FAILURE_COMPUTE_CAP_UNSUPPORTED),
    ],
)
def test_classify_smi_failure(relative: str, kind: str) -> None:
    assert classify_smi_failure("", read(relative)) == kind
    assert classify_smi_failure(read(relative), "") == kind


def test_classify_unknown_failure() -> None:
    assert classify_smi_failure("", "Segmentation fault") == FAILURE_OTHER


# --- main() with a fake nvidia-smi ---------------------------------------------------------


def test_main_h200_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smi = fake_smi(
        tmp_path,
        xml_out=read("h200x2/nvidia-smi-q-x.xml"),
        csv_out=read("h200x2/query-gpu-noheader-nounits.csv"),
    )
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 0
    assert result["changed"] is False
    assert result["nvidia_driver"] == {
        "present": True,
        "absent_reason": "",
        "driver_version": "580.159.04",
        "cuda_max_version": "13.0",
        "gpu_count": 2,
        "gpus": [
            {
                "index": 0,
                "name": "NVIDIA H200",
                "uuid": H200_UUIDS[0],
                "memory_mib": 143771,
                "compute_capability": "9.0",
                "pci_bus_id": "00000000:00:06.0",
            },
            {
                "index": 1,
                "name": "NVIDIA H200",
                "uuid": H200_UUIDS[1],
                "memory_mib": 143771,
                "compute_capability": "9.0",
                "pci_bus_id": "00000000:00:07.0",
            },
        ],
        "compute_capabilities": ["9.0"],
    }
    calls = (smi.parent / "calls.log").read_text().splitlines()
    assert calls == ["-q -x", " ".join(CSV_QUERY_ARGS)]
    assert "warnings" not in result


def test_main_on_recorded_single_h200_matches_the_real_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outputs and module result recorded together on a real 1x H200 host."""
    smi = fake_smi(
        tmp_path,
        xml_out=read("h200x1/nvidia-smi-q-x.xml"),
        csv_out=read("h200x1/query-gpu-noheader-nounits.csv"),
    )
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 0
    assert result["nvidia_driver"] == json.loads(read("h200x1/module-result.json"))


def test_current_driver_unknown_field_text_is_recognised() -> None:
    """Recorded form of the message (for another field) that old drivers print for compute_cap."""
    recorded = read("h200x1/unknown-field-error.txt")
    assert recorded.startswith('Field "bogus_field" is not a valid field to query.')
    old_driver = recorded.replace("bogus_field", "compute_cap")
    assert classify_smi_failure("", old_driver) == FAILURE_COMPUTE_CAP_UNSUPPORTED
    assert classify_smi_failure("", recorded) == FAILURE_OTHER


def test_main_single_a100_in_check_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smi = fake_smi(
        tmp_path,
        xml_out=read("a100x1/nvidia-smi-q-x.xml"),
        csv_out=read("a100x1/query-gpu-noheader-nounits.csv"),
    )
    rc, result = run_main({"nvidia_smi": str(smi), "_ansible_check_mode": True}, capsys)
    assert rc == 0
    facts = result["nvidia_driver"]
    assert facts["gpu_count"] == 1
    assert facts["gpus"][0]["memory_mib"] == 81920
    assert facts["compute_capabilities"] == ["8.0"]


def test_main_mixed_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smi = fake_smi(
        tmp_path,
        xml_out=read("l4-t4-mixed/nvidia-smi-q-x.xml"),
        csv_out=read("l4-t4-mixed/query-gpu-noheader-nounits.csv"),
    )
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 0
    facts = result["nvidia_driver"]
    assert facts["cuda_max_version"] == "12.4"
    assert [g["compute_capability"] for g in facts["gpus"]] == ["8.9", "7.5"]
    assert facts["compute_capabilities"] == ["7.5", "8.9"]


def test_missing_binary_fails_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_main({"nvidia_smi": str(tmp_path / "no" / "nvidia-smi")}, capsys)
    assert rc == 1
    assert result["failed"] is True
    assert "is not an executable file" in result["msg"]
    assert "Install the NVIDIA driver" in result["msg"]
    assert "vllm_source_nvidia_smi" in result["msg"]
    assert "vllm_source_require_gpu: false" in result["msg"]


def test_missing_name_on_path_fails(capsys: pytest.CaptureFixture[str]) -> None:
    rc, result = run_main({"nvidia_smi": "nvidia-smi-that-does-not-exist"}, capsys)
    assert rc == 1
    assert "was not found on PATH" in result["msg"]


def test_missing_binary_without_require_gpu_is_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_main(
        {"nvidia_smi": str(tmp_path / "nvidia-smi"), "require_gpu": False}, capsys
    )
    assert rc == 0
    assert "failed" not in result
    facts = result["nvidia_driver"]
    assert facts["present"] is False
    assert facts["gpus"] == []
    assert facts["gpu_count"] == 0
    assert facts["compute_capabilities"] == []
    assert "is not an executable file" in facts["absent_reason"]


def test_driver_not_loaded_fails_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = fake_smi(tmp_path, xml_out=read("errors/driver-not-loaded.txt"), xml_rc=9)
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 1
    assert "the NVIDIA driver is not loaded" in result["msg"]
    assert "couldn't communicate with the NVIDIA driver" in result["msg"]
    assert "vllm_source_require_gpu: false" in result["msg"]


def test_driver_not_loaded_without_require_gpu_is_absent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = fake_smi(tmp_path, xml_out=read("errors/driver-not-loaded.txt"), xml_rc=9)
    rc, result = run_main({"nvidia_smi": str(smi), "require_gpu": False}, capsys)
    assert rc == 0
    assert result["nvidia_driver"]["present"] is False
    assert "not loaded" in result["nvidia_driver"]["absent_reason"]


def test_no_devices_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smi = fake_smi(tmp_path, xml_out=read("errors/no-devices.txt"), xml_rc=6)
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 1
    assert "finds no GPU" in result["msg"]
    assert "vllm_source_require_gpu: false" in result["msg"]


def test_xml_with_zero_gpus_without_require_gpu_keeps_driver_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = (
        '<?xml version="1.0" ?>\n<nvidia_smi_log><driver_version>580.159.04</driver_version>'
        "<cuda_version>13.0</cuda_version><attached_gpus>0</attached_gpus></nvidia_smi_log>\n"
    )
    smi = fake_smi(tmp_path, xml_out=xml)
    rc, result = run_main({"nvidia_smi": str(smi), "require_gpu": False}, capsys)
    assert rc == 0
    facts = result["nvidia_driver"]
    assert facts["present"] is False
    assert facts["driver_version"] == "580.159.04"
    assert facts["cuda_max_version"] == "13.0"
    assert "driver 580.159.04 is loaded" in facts["absent_reason"]


def test_other_failure_reports_rc_and_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = fake_smi(tmp_path, xml_out="Unable to determine the device handle\n", xml_rc=15)
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 1
    assert "failed with rc 15" in result["msg"]
    assert "Unable to determine the device handle" in result["msg"]


def test_old_driver_falls_back_to_the_name_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = fake_smi(
        tmp_path,
        xml_out=read("v100-old-driver/nvidia-smi-q-x.xml"),
        csv_err=read("v100-old-driver/query-gpu-error.txt"),
        csv_rc=2,
    )
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 0
    facts = result["nvidia_driver"]
    assert facts["driver_version"] == "470.103.01"
    assert facts["gpus"][0]["compute_capability"] == "7.0"
    assert facts["gpus"][0]["index"] == 0
    assert facts["compute_capabilities"] == ["7.0"]
    assert "does not report compute_cap" in warnings_text(result)
    assert "Tesla V100-SXM2-16GB: 7.0" in warnings_text(result)


def test_old_driver_with_unknown_name_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = read("v100-old-driver/nvidia-smi-q-x.xml").replace("Tesla V100-SXM2-16GB", "Tesla K80")
    smi = fake_smi(
        tmp_path, xml_out=xml, csv_err=read("v100-old-driver/query-gpu-error.txt"), csv_rc=2
    )
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 1
    assert "Cannot tell the compute capability of Tesla K80" in result["msg"]
    assert "Upgrade the NVIDIA driver" in result["msg"]


def test_old_driver_with_unknown_name_without_require_gpu_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = read("v100-old-driver/nvidia-smi-q-x.xml").replace("Tesla V100-SXM2-16GB", "Tesla K80")
    smi = fake_smi(
        tmp_path, xml_out=xml, csv_err=read("v100-old-driver/query-gpu-error.txt"), csv_rc=2
    )
    rc, result = run_main({"nvidia_smi": str(smi), "require_gpu": False}, capsys)
    assert rc == 0
    facts = result["nvidia_driver"]
    assert facts["present"] is True
    assert facts["gpus"][0]["compute_capability"] == ""
    assert facts["compute_capabilities"] == []
    assert "Cannot tell the compute capability of Tesla K80" in warnings_text(result)


def test_csv_failure_other_than_compute_cap_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    smi = fake_smi(
        tmp_path,
        xml_out=read("h200x2/nvidia-smi-q-x.xml"),
        csv_err="GPU is lost\n",
        csv_rc=15,
    )
    rc, result = run_main({"nvidia_smi": str(smi)}, capsys)
    assert rc == 1
    assert "--query-gpu=" in result["msg"]
    assert "GPU is lost" in result["msg"]
