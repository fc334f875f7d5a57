rule train:
    input:
        **get_step_inputs("train"),
    output:
        result=f"{RESULTS}/trials/{{trial}}/train.json",
    log:
        f"{LOGS}/train/{{trial}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{trial}}.tsv"
    priority: get_step_priority()
    retries: CFG.failures.retries.train
    # on a cluster: train+eval of N trials in one job (get_group in common.smk; profiles/slurm)
    group:
        get_group("trial")
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=get_runtime_min("train"),
        gpu=get_gpu,
    params:
        script=get_script("train"),
        command=get_command("train"),
    shell:
        f"python {{params.script}} --trial {{wildcards.trial}} --plan {PLAN_JSON}"
        f" --log {{log}} --threads {{threads}} --data {DATA_MARKER} --output {{output.result}}"
