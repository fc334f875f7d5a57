# A checkpoint, not a rule: every trial reads the plan as an `ancient` input, and when a
# changed sweep re-plans, Snakemake (9.27) would otherwise drop the new trials' jobs from that
# run (jobs below a re-run job are only reached through non-ancient edges). After a checkpoint
# the DAG is re-evaluated, so new trials run in the same invocation and old ones are kept.
checkpoint plan:
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
    script:
        "../../scripts/plan.py"


rule prepare_data:
    input:
        plan=ancient(rules.plan.output.json),
        sources=get_sources("prepare"),
    output:
        marker=DATA_MARKER,
    log:
        f"{LOGS}/prepare_data/{DATA_KEY}.log",
    conda:
        "../../environment.yml"
    params:
        script=get_script("prepare_data"),
        command=get_command("prepare"),
    shell:
        "python {params.script:q} --trial - --plan {input.plan:q}"
        " --log {log:q} --output {output.marker:q}"
