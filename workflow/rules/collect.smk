rule collect:
    input:
        plan=rules.plan.output.json,
        measure=get_all_results,
    output:
        summary=report(
            f"{RESULTS}/summary.csv",
            caption="../report/summary.rst",
            category="3. Data files",
            labels={
                "name": "summary.csv",
                "content": "every trial: status, metrics, error",
            },
        ),
        configs=report(
            f"{RESULTS}/configs.csv",
            caption="../report/configs.rst",
            category="3. Data files",
            labels={
                "name": "configs.csv",
                "content": "per configuration: n, mean, std, 95% CI",
            },
        ),
    log:
        f"{LOGS}/collect/collect.log",
    conda:
        "../../environment.yml"
    params:
        script=get_script("collect"),
        logs=LOGS,
    shell:
        "python {params.script:q} --plan {input.plan:q} --logs {params.logs:q}"
        " --summary {output.summary:q} --configs {output.configs:q} > {log:q} 2>&1"
