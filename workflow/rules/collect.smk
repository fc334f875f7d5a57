rule collect:
    input:
        plan=rules.plan.output.json,
        measure=expand(rules.measure.output.result, trial=TRIALS),
    output:
        summary=f"{RESULTS}/summary.csv",
        configs=f"{RESULTS}/configs.csv",
    log:
        f"{LOGS}/collect/collect.log",
    shell:
        "{PYTHON} -m snakesweep.collect --plan {input.plan} --results {RESULTS} --logs {LOGS}"
        " --summary {output.summary} --configs {output.configs} > {log} 2>&1"
