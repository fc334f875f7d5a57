"""answer.html: values escaped, null shown as JSON, the missing trade-off explained."""

from __future__ import annotations

from snakesweep import report
from snakesweep.report import render_answer_html


def test_answer_html_escapes_values_and_shows_null():
    import pandas as pd

    rows = [{"trial": f"{p}{s}", "status": "ok", "p": p, "seed": s, "acc": a + 0.01 * s}
            for p, a in (("<script>alert(1)</script>", 0.5), ("b&c", 0.4), (None, 0.3)) for s in range(3)]
    rep = report.compute_reports(pd.DataFrame(rows), {"param_names": ["p", "seed"], "trials": []}, ("acc", "max"), [])
    page = render_answer_html(rep)
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "b&amp;c" in page
    assert "<td class='l'>null</td>" in page
    assert "set <code>report.extra_objectives</code>" in page


def test_the_interval_note_is_written_once_per_table_with_a_mark_in_each_row():
    # issue 16: the "n too small" note wrapped to ~8 lines in every row; now a numbered mark + a note
    import re

    from test_layout_browser import realistic_answer

    page = realistic_answer(seeds=(0, 1))
    tables = page.count("<table>")
    shown = re.sub(r" title='[^']*'", "", page)  # the mark's tooltip repeats the note; the text does not
    assert shown.count("n too small for an interval") <= tables  # once per table at most
    assert page.count("<sup class='n'") >= 12 + 2  # every ranked row and the best/runner-up rows
    assert "<ol class='notes'><li>n too small for an interval (2 ok value(s); need &gt;= 3)</li></ol>" in page
    cyc = realistic_answer(seeds=(0,), cycles=3, objective=("throughput_sps", "max"))
    assert "per-cycle mean of the one seed" in cyc
    assert "std and interval over the 3 measurement cycles of the one ok seed" in cyc
