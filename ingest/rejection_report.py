"""Rejection reports: the same content as JSON (for tools) and Markdown (for people).

`extra` sections a report may carry: `entry` (an inbox entry quarantined unopened: its kind,
escaped name and the name's bytes in hex), `redaction` (identifier columns removed from the
stored copy, with the original's SHA-256), `not_kept` (why the file's bytes were not kept) and
`sdtm` (an SDTM delivery set: its domain files and each canonical feed's verdict).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.tables import markdown_table
from expectations.contracts import RULES
from ingest.gate import EXAMPLES_PER_RULE, GateResult


def report_dict(result: GateResult, extra: dict | None = None) -> dict:
    return {
        "file": result.path.name,
        "smo_id": result.smo_id,
        "feed": result.feed,
        "study_id": result.study_id,
        "delivery_date": result.delivery_date.isoformat() if result.delivery_date else None,
        "sha256": result.sha256,
        "profile_version": result.profile_version,
        "status": "ACCEPTED" if result.accepted else "REJECTED",
        "rows_read": result.row_count,
        "error_count": result.error_count,
        "examples_per_rule": EXAMPLES_PER_RULE,
        "totals": [
            {
                "rule": t.rule,
                "column": t.column,
                "count": t.count,
                "description": RULES[t.rule].description,
            }
            for t in result.totals
        ],
        "failures": [
            {
                "file": p.file or result.path.name,
                "row": p.row,
                "column": p.column,
                "rule": p.rule,
                "value": p.value,
                "message": p.message,
            }
            for p in result.problems
        ],
        **(extra or {}),
    }


def report_markdown(result: GateResult, extra: dict | None = None) -> str:
    data = report_dict(result, extra)
    lines = [
        f"# Delivery {data['status'].lower()}: `{data['file']}`",
        "",
        f"- SMO: **{data['smo_id']}**, feed: **{data['feed'] or 'unknown'}**"
        + (f", study: **{data['study_id']}**" if data["study_id"] else ""),
        f"- delivery date: {data['delivery_date'] or 'unknown'}; rows read: {data['rows_read']:,}",
        f"- profile version: {data['profile_version']}; sha256: `{data['sha256']}`",
        f"- problems: **{data['error_count']:,}**",
    ]
    entry = data.get("entry")
    if entry:
        lines.append(
            f"- entry: {entry['entry_kind']}; name as delivered (bytes, hex): "
            f"`{entry['name_bytes_hex']}`"
            + (f"; link to `{entry['link_target']}`" if entry.get("link_target") else "")
        )
    redaction = data.get("redaction")
    if redaction:
        lines.append(
            f"- stored as a redacted copy without {', '.join(redaction['columns_removed'])} "
            f"(strip_identifiers); the original's sha256 is `{redaction['original_sha256']}`, "
            "its bytes are not kept"
        )
    if data.get("not_kept"):
        lines.append(f"- {data['not_kept']}")
    sdtm = data.get("sdtm")
    if sdtm:
        lines.append(
            "- SDTM delivery set: "
            + ", ".join(f"`{f['file']}` ({f['domain']})" for f in sdtm["files"])
            + "; canonical feeds: "
            + (", ".join(f"{feed} {verdict}" for feed, verdict in sdtm["feeds"].items()) or "none")
        )
    if data["status"] == "REJECTED" and any(
        t["rule"].startswith("warehouse.") for t in data["totals"]
    ):
        lines += [
            "",
            "The file passed the delivery gate and was loaded, but its rows failed a blocking "
            "warehouse check, so it was pulled: its rows were removed, the SMO's previous "
            "accepted snapshot is current again and every other SMO's data was published "
            "without it. Fix the data named below and put the file back in the inbox.",
        ]
    elif data["status"] == "REJECTED" and sdtm:
        lines += [
            "",
            "The whole set of domain files was refused and nothing from it was loaded (its "
            "feeds load together or not at all); the SMO's previous accepted snapshot stays "
            "current. Fix the files (or the profile, if they are right) and put every domain "
            "file of the set back in the inbox.",
        ]
    elif data["status"] == "REJECTED":
        lines += [
            "",
            "The whole file was refused and nothing from it was loaded; the SMO's previous "
            "accepted snapshot stays current. Fix the file (or the profile, if the file is "
            "right) and put it back in the inbox.",
        ]
    if data["totals"]:
        lines += [
            "",
            "## Problems per rule",
            "",
            markdown_table(
                ["rule", "column", "count", "what it means"],
                [
                    [f"`{t['rule']}`", t["column"], f"{t['count']:,}", t["description"]]
                    for t in data["totals"]
                ],
                numeric={2},
            ),
            "",
            f"## Failures (first {EXAMPLES_PER_RULE} per rule and column)",
            "",
            "Row numbers are as a spreadsheet shows them (the header is its own row).",
            "",
            _failures_table(data),
        ]
    return "\n".join(lines) + "\n"


def _failures_table(data: dict) -> str:
    """Failures with their file when the report covers several (an SDTM delivery set)."""
    several = len({f["file"] for f in data["failures"]}) > 1 or data.get("sdtm")
    header = ["row", "column", "rule", "value", "message"]
    rows = [
        [f["row"], f["column"], f"`{f['rule']}`", f["value"], f["message"]]
        for f in data["failures"]
    ]
    if several:
        header.insert(0, "file")
        rows = [[f"`{f['file']}`", *row] for f, row in zip(data["failures"], rows, strict=True)]
        return markdown_table(header, rows, numeric={1})
    return markdown_table(header, rows, numeric={0})


def write_reports(result: GateResult, stem: Path, extra: dict | None = None) -> tuple[Path, Path]:
    """Write `<stem>.report.json` and `<stem>.report.md`; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    json_path = stem.with_name(stem.name + ".report.json")
    md_path = stem.with_name(stem.name + ".report.md")
    json_path.write_text(
        json.dumps(report_dict(result, extra), indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    md_path.write_text(report_markdown(result, extra), encoding="utf-8")
    return json_path, md_path
