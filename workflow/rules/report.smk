# Reports over the collected results: best.json, pareto.csv, importance.csv and the plots,
# all flagged for `snakemake --report report.html` with a caption each (workflow/report/).
# The report settings reach the shell only as validated metric names and max/min; the argv
# comes from snakesweep.report.report_command_args, which the onerror handler runs too.
from functools import partial

from snakesweep.plan import build_plan
from snakesweep.preview import show_preview
from snakesweep.report import report_shell_args, workflow_report_settings
from snakesweep.report import report_targets, search_plot_output

# the objective was checked against a built-in's metrics in common.smk (check_objectives)
REPORT = workflow_report_settings(CFG.model_dump(mode="json"))
REPORT_ARGS = report_shell_args(REPORT, RESULTS, CFG.sweep.search.method)

# a search's own figure (the halving ladder, or the objective against trial order with the
# best so far: snakesweep/report/plots.py), an output of report_plots only for a search, so
# a grid sweep gets no placeholder it has no use for ({} for a grid)
SEARCH_PLOT = search_plot_output(CFG.sweep.search.method, RESULTS)
SEARCH_PLOT_OUTPUT = {
    name: report(
        path,
        caption="../report/search_plot.rst",
        labels={"figure": "5. the search"},
        category="2. Plots",
    )
    for name, path in SEARCH_PLOT.items()
}

# PBT's lineage table (snakesweep/report/lineage.py), made only for a pbt sweep; answer.html
# shows the same lineage (from the same round files), so report_plots waits for it and a pbt
# run always leaves lineage.csv beside the other reports ({} for every other method)
LINEAGE = (
    {"lineage": f"{RESULTS}/lineage.csv"} if CFG.sweep.search.method == "pbt" else {}
)

# every report file (rule all): the search's figure too, for a search (a partial, not a def:
# `snakemake --lint` wants functions in common.smk)
get_report_targets = partial(
    report_targets, results=RESULTS, search=CFG.sweep.search.method
)


report: "../report/workflow.rst"


# The size of the run, at the start of every invocation (`snakemake -n` included); only the
# main process prints it, not jobs that re-parse this file on a cluster node.
if workflow.is_main_process:
    show_preview(
        workflow,
        TRIALS,
        STEPS,
        RESULTS,
        {"measure": CFG.measure.cycles},
        plan=build_plan(CFG, TRIAL_LIST),
        sources={s: get_sources(s) for s in ["prepare", *STEPS]},
        data_marker=DATA_MARKER,
    )


rule report_tables:
    input:
        summary=f"{RESULTS}/summary.csv",
        configs=f"{RESULTS}/configs.csv",
        plan=f"{RESULTS}/plan/trials.json",
    output:
        best=report(
            f"{RESULTS}/best.json",
            caption="../report/best.rst",
            labels={"name": "best.json", "content": "best vs runner-up, Welch t-test"},
            category="3. Data files",
        ),
        pareto=report(
            f"{RESULTS}/pareto.csv",
            caption="../report/pareto.rst",
            labels={"name": "pareto.csv", "content": "non-dominated configurations"},
            category="3. Data files",
        ),
        importance=report(
            f"{RESULTS}/importance.csv",
            caption="../report/importance.rst",
            labels={"name": "importance.csv", "content": "eta squared per parameter"},
            category="3. Data files",
        ),
    log:
        f"{LOGS}/report/report_tables.log",
    conda:
        "../../environment.yml"
    params:
        script=get_script("report_tables"),
        args=REPORT_ARGS["tables"],
    shell:
        "python {params.script:q} {params.args} > {log:q} 2>&1"


if LINEAGE:

    rule report_lineage:
        input:
            summary=f"{RESULTS}/summary.csv",
            plan=f"{RESULTS}/plan/trials.json",
        output:
            lineage=report(
                LINEAGE["lineage"],
                caption="../report/lineage.rst",
                labels={
                    "name": "lineage.csv",
                    "content": "PBT: each member per generation",
                },
                category="3. Data files",
            ),
        log:
            f"{LOGS}/report/report_lineage.log",
        conda:
            "../../environment.yml"
        params:
            script=get_script("report_lineage"),
            objective=REPORT["objective"],
            direction=REPORT["direction"],
        shell:
            "python {params.script:q} --plan {input.plan:q} --summary {input.summary:q}"
            " --objective {params.objective:q} --direction {params.direction:q}"
            " --out {output.lineage:q} > {log:q} 2>&1"


# `**SEARCH_PLOT_OUTPUT` is the search's figure, only for a search (see above). The plots
# recompute the tables from the summary (snakesweep.report.compute_reports), so they do not
# wait for report_tables: the two run side by side (~1 s less per run).
rule report_plots:
    input:
        **LINEAGE,
        summary=f"{RESULTS}/summary.csv",
        configs=f"{RESULTS}/configs.csv",
        plan=f"{RESULTS}/plan/trials.json",
    output:
        **SEARCH_PLOT_OUTPUT,
        answer=report(
            f"{RESULTS}/report/answer.html",
            caption="../report/answer.rst",
            labels={
                "name": "answer",
                "content": "best configuration, parameter importance, Pareto front",
            },
            category="1. Answer",
        ),
        objective=report(
            f"{RESULTS}/plots/objective_vs_params.png",
            caption="../report/objective_vs_params.rst",
            labels={"figure": "1. objective vs each parameter"},
            category="2. Plots",
        ),
        heatmap=report(
            f"{RESULTS}/plots/heatmap.png",
            caption="../report/heatmap.rst",
            labels={"figure": "2. heatmap of the two most important parameters"},
            category="2. Plots",
        ),
        pareto=report(
            f"{RESULTS}/plots/pareto.png",
            caption="../report/pareto_plot.rst",
            labels={"figure": "3. Pareto front"},
            category="2. Plots",
        ),
        curves=report(
            f"{RESULTS}/plots/training_curves.png",
            caption="../report/training_curves.rst",
            labels={"figure": "4. training curves"},
            category="2. Plots",
        ),
    log:
        f"{LOGS}/report/report_plots.log",
    conda:
        "../../environment.yml"
    params:
        script=get_script("report_plots"),
        args=REPORT_ARGS["plots"],
    shell:
        "python {params.script:q} {params.args} > {log:q} 2>&1"
