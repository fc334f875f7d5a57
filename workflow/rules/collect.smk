rule collect:
    input:
        plan=rules.plan.output.json,
        measure=expand(rules.measure.output.result, trial=TRIALS),
    output:
        summary=f"{RESULTS}/summary.csv",
        configs=f"{RESULTS}/configs.csv",
    log:
        f"{LOGS}/collect/collect.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m snakesweep.collect --plan {input.plan} --summary {output.summary} --configs {output.configs} > {log} 2>&1"
