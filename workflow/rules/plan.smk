rule plan:
    output:
        json=f"{RESULTS}/plan/trials.json",
        csv=f"{RESULTS}/plan/trials.csv",
    params:
        # the params trigger re-plans when the sweep's meaning changes; the plan is an
        # `ancient` input of every trial, so re-planning never re-runs a finished trial
        sweep_hash=SWEEP_HASH,
        plan=get_plan(),
    log:
        f"{LOGS}/plan/plan.log",
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
    shell:
        "{PYTHON} -m snakesweep.supervise prepare_data --trial - --plan {input.plan}"
        " --log {log} --output {output.marker}"
