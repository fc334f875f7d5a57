rule eval:
    input:
        **get_step_inputs("eval"),
    output:
        result=f"{RESULTS}/trials/{{trial}}/eval.json",
    log:
        f"{LOGS}/eval/{{trial}}.log",
    priority: get_step_priority("eval")
    retries: CFG.failures.retries.eval
    # in the same cluster job as the trial's train (get_group in common.smk)
    group:
        get_group("trial")
    conda:
        "../../environment.yml"
    threads: get_threads()
    resources:
        mem_mb=1000,
        runtime=get_runtime_min("eval"),
    params:
        script=get_script("eval"),
        command=get_command("eval"),
    shell:
        f"python {{params.script:q}} --trial {{wildcards.trial:q}} --plan {PLAN_ARG}"
        f" --log {{log:q}} --threads {{threads}} --data {DATA_ARG} --train {{input.train:q}}"
        " --output {output.result:q}"
