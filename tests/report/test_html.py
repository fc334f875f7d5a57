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
