"""`send-bulk` files with list columns: each row becomes a `kind: list` batch item, checked
with the server's own list rules before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

from wagate.bulk import read_plan


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "menu.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_columns_make_one_section(tmp_path: Path) -> None:
    plan = read_plan(
        _file(
            tmp_path,
            "phone,message,button,header,row.1.id,row.1.title,row.2.id,row.2.title,"
            "row.2.description\n"
            "+14155552671,Pick a slot,Slots,Delivery,am,Morning,pm,Afternoon,12 to 5\n",
        ),
        template=None,
        language=None,
    )
    [row] = plan.rows
    assert row.problems == ()
    assert row.body == {
        "kind": "list",
        "phone": "+14155552671",
        "message": "Pick a slot",
        "button": "Slots",
        "header": "Delivery",
        "sections": [
            {
                "rows": [
                    {"id": "am", "title": "Morning"},
                    {"id": "pm", "title": "Afternoon", "description": "12 to 5"},
                ]
            }
        ],
    }


def test_a_sections_column_holds_several_sections(tmp_path: Path) -> None:
    sections = [
        {"title": "Small", "rows": [{"id": "s", "title": "S"}]},
        {"title": "Big", "rows": [{"id": "l", "title": "L"}]},
    ]
    cell = json.dumps(sections).replace('"', '""')
    plan = read_plan(
        _file(tmp_path, f'phone,message,button,sections\n+14155552671,Size?,Sizes,"{cell}"\n'),
        template=None,
        language=None,
    )
    assert plan.rows[0].body["sections"] == sections
    assert plan.rows[0].problems == ()


def test_each_row_is_checked_with_the_servers_rules(tmp_path: Path) -> None:
    plan = read_plan(
        _file(
            tmp_path,
            "phone,message,button,row.1.id,row.1.title\n"
            "+14155552671,Pick,Slots,am,Morning\n"
            "+14155552671,Pick,A button text over twenty,am,Morning\n"
            "+14155552671,Pick,Slots,,\n"
            "+1 415 555 2671,Pick,Slots,am,Morning\n",
        ),
        template=None,
        language=None,
    )
    codes = [[code for code, _ in row.problems] for row in plan.rows]
    assert codes == [[], ["button_text_too_long"], ["invalid_sections"], ["invalid_phone_format"]]
