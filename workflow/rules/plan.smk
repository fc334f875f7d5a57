rule plan:
    output:
        json=f"{RESULTS}/plan/trials.json",
        csv=f"{RESULTS}/plan/trials.csv",
    log:
        f"{LOGS}/plan/plan.log",
    conda:
        "../../environment.yml"
    params:
        # the params trigger re-plans when the sweep's meaning changes; the plan is an
        # `ancient` input of every trial, so re-planning never re-runs a finished trial
        sweep_hash=SWEEP_HASH,
        plan=get_plan(),
    script:
        "../scripts/plan.py"


rule prepare_data:
    input:
        plan=ancient(rules.plan.output.json),
        workload=get_workload_file(),
    output:
        marker=DATA_MARKER,
    log:
        f"{LOGS}/prepare_data/{WORKLOAD.key}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m snakesweep.supervise prepare_data --trial - --plan {input.plan}"
        " --log {log} --output {output.marker}"
