rule train:
    input:
        unpack(get_upstream("train")),
        plan=ancient(rules.plan.output.json),
        data=rules.prepare_data.output.marker,
        sources=get_sources("train"),
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
        "python {params.script} --trial {wildcards.trial} --plan {input.plan}"
        " --log {log} --threads {threads} --data {input.data} --output {output.result}"
