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
    shell:
        "python {params.script} --plan {input.plan} --summary {output.summary} --configs {output.configs} > {log} 2>&1"
