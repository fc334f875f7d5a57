rule train:
    input:
        **get_step_inputs("train"),
        # halving/hyperband/pbt: the train result of the trial this one continues from
        **get_resume_inputs(),
    output:
        result=f"{RESULTS}/trials/{{trial}}/train.json",
    log:
        f"{LOGS}/train/{{trial}}.log",
    priority: get_step_priority("train")
    retries: CFG.failures.retries.train
    # on a cluster: train+eval of N trials in one job (get_group in common.smk; profiles/slurm)
    group:
        get_group("trial")
    conda:
        "../../environment.yml"
    threads: get_threads()
    resources:
        mem_mb=2000,
        runtime=get_runtime_min("train"),
        gpu=get_gpu,
    params:
        script=get_script("train"),
        command=get_command("train"),
    shell:
        f"python {{params.script:q}} --trial {{wildcards.trial:q}} --plan {PLAN_ARG}"
        f" --log {{log:q}} --threads {{threads}} --data {DATA_ARG} --output {{output.result:q}}"
