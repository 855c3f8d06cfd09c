"""Parse nvidia-smi output into the facts the vllm_source role needs.

Pure functions only (no AnsibleModule), so pytest can feed them recorded output.
Runs on the managed host too: Python 3.8+, standard library only.
"""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple

from ansible.module_utils.vllm_fleet_versions import capability_key

# The per-GPU CSV query. The XML (-q -x) has no compute capability field, so this
# query is what gives it; `compute_cap` needs a newer driver than the rest.
CSV_QUERY_FIELDS = (
    "index",
    "name",
    "uuid",
    "driver_version",
    "memory.total",
    "compute_cap",
    "pci.bus_id",
)
CSV_QUERY_ARGS = ["--query-gpu=" + ",".join(CSV_QUERY_FIELDS), "--format=csv,noheader,nounits"]
XML_QUERY_ARGS = ["-q", "-x"]

# What nvidia-smi prints for the failure modes we recognise.
DRIVER_NOT_LOADED_TEXT = "couldn't communicate with the NVIDIA driver"
NO_DEVICES_TEXT = "No devices were found"
_UNKNOWN_FIELD_RE = re.compile(r'"?compute_cap"?\s+is not a valid field', re.IGNORECASE)

FAILURE_DRIVER_NOT_LOADED = "driver_not_loaded"
FAILURE_NO_DEVICES = "no_devices"
FAILURE_COMPUTE_CAP_UNSUPPORTED = "compute_cap_unsupported"
FAILURE_OTHER = "other"

# Product name -> compute capability, for drivers whose nvidia-smi rejects the
# `compute_cap` query field. Source: NVIDIA's "CUDA GPU Compute Capability" page
# (https://developer.nvidia.com/cuda-gpus) and its legacy page
# (https://developer.nvidia.com/cuda-legacy-gpus). A10G, A800, H800 and H20 are not
# listed there; they are cloud/export variants of the A10, A100 and H100 chips.
# Order matters: the more specific patterns come first ("RTX 5000 Ada" is 8.9,
# "Quadro RTX 5000" is 7.5, "GeForce RTX 5090" is 12.0).
COMPUTE_CAPABILITY_BY_NAME: Tuple[Tuple[str, str], ...] = (
    (r"\bGB10\b", "12.1"),
    (r"\bRTX PRO \d+ BLACKWELL\b", "12.0"),
    (r"\bGEFORCE RTX 50\d0\b", "12.0"),
    (r"\bG?B300\b", "10.3"),
    (r"\bG?B200\b", "10.0"),
    (r"\b(GH200|H200|H100|H800|H20)\b", "9.0"),
    (r"\bRTX \d+ (SFF )?ADA\b", "8.9"),
    (r"\b(L40S|L40|L4)\b", "8.9"),
    (r"\bGEFORCE RTX 40\d0\b", "8.9"),
    (r"\bQUADRO RTX \d000\b", "7.5"),
    (r"\bRTX A\d000\b", "8.6"),
    (r"\bGEFORCE RTX 30\d0\b", "8.6"),
    (r"\b(A40|A10G|A10|A16|A2)\b", "8.6"),
    (r"\b(A100|A800|A30)\b", "8.0"),
    (r"\b(GEFORCE RTX 20\d0|GEFORCE GTX 16\d0|TITAN RTX)\b", "7.5"),
    (r"\b(T4|T1000|T600|T400)\b", "7.5"),
    (r"\b(V100S|V100|QUADRO GV100|TITAN V)\b", "7.0"),
)

_NOT_AVAILABLE = {"", "N/A", "[N/A]", "[NOT SUPPORTED]", "[UNKNOWN ERROR]"}


class NvidiaSmiParseError(ValueError):
    """nvidia-smi printed something we cannot read."""


def _clean(value: Optional[str]) -> str:
    """Strip a field; nvidia-smi's "not available" markers become ""."""
    text = (value or "").strip()
    return "" if text.upper() in _NOT_AVAILABLE else text


def parse_mib(value: Optional[str]) -> int:
    """'143771 MiB' or '143771' -> 143771; unavailable -> 0."""
    match = re.match(r"\s*(\d+)", _clean(value))
    return int(match.group(1)) if match else 0


def sorted_capabilities(capabilities: List[str]) -> List[str]:
    """Unique, non-empty, in numeric order ('10.0' after '9.0')."""
    return sorted({c for c in capabilities if c}, key=capability_key)


def compute_capability_from_name(name: str) -> Optional[str]:
    """Look a product name up in COMPUTE_CAPABILITY_BY_NAME; None if unknown."""
    normalized = " ".join(name.upper().replace("-", " ").split())
    for pattern, capability in COMPUTE_CAPABILITY_BY_NAME:
        if re.search(pattern, normalized):
            return capability
    return None


def classify_smi_failure(stdout: str, stderr: str) -> str:
    """Name the cause of a non-zero nvidia-smi exit from what it printed."""
    text = f"{stdout}\n{stderr}"
    if DRIVER_NOT_LOADED_TEXT.lower() in text.lower():
        return FAILURE_DRIVER_NOT_LOADED
    if NO_DEVICES_TEXT.lower() in text.lower():
        return FAILURE_NO_DEVICES
    if _UNKNOWN_FIELD_RE.search(text):
        return FAILURE_COMPUTE_CAP_UNSUPPORTED
    return FAILURE_OTHER


def parse_smi_xml(text: str) -> Dict[str, Any]:
    """Parse `nvidia-smi -q -x`.

    Returns driver_version, cuda_max_version, attached_gpus and gpus (index, name,
    uuid, memory_mib, pci_bus_id). Index is the position of the <gpu> element, which
    is nvidia-smi's own enumeration order. The XML carries no compute capability.
    """
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise NvidiaSmiParseError(f"nvidia-smi -q -x did not print valid XML: {exc}") from exc
    if root.tag != "nvidia_smi_log":
        raise NvidiaSmiParseError(f"nvidia-smi -q -x printed <{root.tag}>, not <nvidia_smi_log>")
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        gpus.append(
            {
                "index": index,
                "name": _clean(gpu.findtext("product_name")),
                "uuid": _clean(gpu.findtext("uuid")),
                # Direct child only: MIG devices carry their own fb_memory_usage.
                "memory_mib": parse_mib(gpu.findtext("fb_memory_usage/total")),
                "pci_bus_id": _clean(gpu.findtext("pci/pci_bus_id")) or gpu.get("id", ""),
            }
        )
    attached = _clean(root.findtext("attached_gpus"))
    return {
        "driver_version": _clean(root.findtext("driver_version")),
        "cuda_max_version": _clean(root.findtext("cuda_version")),
        "attached_gpus": int(attached) if attached.isdigit() else len(gpus),
        "gpus": gpus,
    }


def parse_smi_csv(text: str) -> List[Dict[str, Any]]:
    """Parse the CSV_QUERY_ARGS query, one dict per GPU.

    Accepts `noheader,nounits` output as the module asks for it, and also a header
    line and ' MiB' units as in a plain `--format=csv` recording.
    """
    rows = []
    for cells in csv.reader(text.splitlines(), skipinitialspace=True):
        cells = [cell.strip() for cell in cells]
        if not any(cells) or cells[0].lower() == "index":
            continue
        if len(cells) != len(CSV_QUERY_FIELDS) or not cells[0].isdigit():
            raise NvidiaSmiParseError(
                "unexpected nvidia-smi CSV line: {!r}".format(",".join(cells))
            )
        rows.append(
            {
                "index": int(cells[0]),
                "name": _clean(cells[1]),
                "uuid": _clean(cells[2]),
                "driver_version": _clean(cells[3]),
                "memory_mib": parse_mib(cells[4]),
                "compute_capability": _clean(cells[5]),
                "pci_bus_id": _clean(cells[6]),
            }
        )
    return rows


def merge_gpus(
    xml_gpus: List[Dict[str, Any]], csv_rows: Optional[List[Dict[str, Any]]]
) -> List[Dict[str, Any]]:
    """Join the XML GPUs with the CSV rows by UUID (index and compute capability).

    csv_rows is None when the CSV query could not run; compute_capability is then "".
    """
    by_uuid = {row["uuid"]: row for row in csv_rows or []}
    merged = []
    for gpu in xml_gpus:
        row = by_uuid.get(gpu["uuid"], {})
        merged.append(
            {
                "index": row.get("index", gpu["index"]),
                "name": gpu["name"] or row.get("name", ""),
                "uuid": gpu["uuid"],
                "memory_mib": gpu["memory_mib"] or row.get("memory_mib", 0),
                "compute_capability": row.get("compute_capability", ""),
                "pci_bus_id": gpu["pci_bus_id"] or row.get("pci_bus_id", ""),
            }
        )
    return sorted(merged, key=lambda gpu: gpu["index"])


def fill_capabilities_from_names(gpus: List[Dict[str, Any]]) -> List[str]:
    """Set a missing compute_capability from the product-name table, in place.

    Returns the names that are not in the table (their capability stays "").
    """
    unknown = []
    for gpu in gpus:
        if gpu["compute_capability"]:
            continue
        capability = compute_capability_from_name(gpu["name"])
        if capability is None:
            unknown.append(gpu["name"])
        else:
            gpu["compute_capability"] = capability
    return unknown


def driver_facts(xml_facts: Dict[str, Any], gpus: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The `nvidia_driver` return value for a host with a working driver and GPUs."""
    return {
        "present": True,
        "absent_reason": "",
        "driver_version": xml_facts["driver_version"],
        "cuda_max_version": xml_facts["cuda_max_version"],
        "gpu_count": len(gpus),
        "gpus": gpus,
        "compute_capabilities": sorted_capabilities([g["compute_capability"] for g in gpus]),
    }


def absent_facts(
    reason: str, driver_version: str = "", cuda_max_version: str = ""
) -> Dict[str, Any]:
    """The `nvidia_driver` return value when there is no usable GPU."""
    return {
        "present": False,
        "absent_reason": reason,
        "driver_version": driver_version,
        "cuda_max_version": cuda_max_version,
        "gpu_count": 0,
        "gpus": [],
        "compute_capabilities": [],
    }
