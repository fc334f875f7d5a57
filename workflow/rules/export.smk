# issue 20: the sweep's trials exported to the trackers it asks for (`report.export: [mlflow, wandb]`),
# at the end of a run, on the submit host (a local rule: one writer, never a cluster job). The rule
# exists only when the sweep asks for an export; its output records what the export did.
EXPORT_TARGETS = [f"{RESULTS}/export/{target}.json" for target in CFG.report.export]

if EXPORT_TARGETS:

    rule export:
        input:
            summary=f"{RESULTS}/summary.csv",
            plan=f"{RESULTS}/plan/trials.json",
        output:
            f"{RESULTS}/export/{{target}}.json",
        log:
            f"{LOGS}/export/{{target}}.log",
        wildcard_constraints:
            target="mlflow|wandb",
        conda:
            "../../environment.yml"
        params:
            script=get_script("export"),
            sweep=RESULTS,
        shell:
            "python {params.script:q} --marker {output:q} {wildcards.target}"
            " {params.sweep:q} > {log:q} 2>&1"

    localrules:
        export,
