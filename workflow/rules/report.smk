# Reports over the collected results: best.json, pareto.csv, importance.csv and the plots,
# all flagged for `snakemake --report report.html` with a caption each (workflow/report/).
# The report settings reach the shell only as validated metric names and max/min.
from snakesweep.plan import build_plan
from snakesweep.preview import show_preview
from snakesweep.report import workflow_report_settings
from snakesweep.report import report_targets as get_report_targets

# the objective was checked against a built-in's metrics in common.smk (check_objectives)
REPORT = workflow_report_settings(CFG.model_dump(mode="json"))


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
        objective=REPORT["objective"],
        direction=REPORT["direction"],
        extra=REPORT["extra"],
    shell:
        "python {params.script} --summary {input.summary} --configs {input.configs}"
        " --plan {input.plan} --objective {params.objective:q} --direction {params.direction:q}"
        " --extra={params.extra:q} --best {output.best} --pareto {output.pareto}"
        " --importance {output.importance} > {log} 2>&1"


rule report_plots:
    input:
        summary=f"{RESULTS}/summary.csv",
        configs=f"{RESULTS}/configs.csv",
        plan=f"{RESULTS}/plan/trials.json",
        importance=rules.report_tables.output.importance,
        pareto=rules.report_tables.output.pareto,
    output:
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
        trials_dir=f"{RESULTS}/trials",
        objective=REPORT["objective"],
        direction=REPORT["direction"],
        extra=REPORT["extra"],
    shell:
        "python {params.script} --summary {input.summary} --configs {input.configs}"
        " --plan {input.plan} --importance {input.importance} --pareto {input.pareto}"
        " --trials-dir {params.trials_dir:q} --objective {params.objective:q}"
        " --direction {params.direction:q} --extra={params.extra:q}"
        " --out-objective {output.objective} --out-heatmap {output.heatmap}"
        " --out-pareto {output.pareto} --out-curves {output.curves}"
        " --html {output.answer} > {log} 2>&1"
