# Measure jobs hold `measure_slot` (capacity 1, registered in common.smk): timings and energy
# are never contaminated by a neighbouring measurement. They wait for the trial's selected
# steps before them (train, eval); a `steps: [measure]` study measures untrained models.
if CFG.measure.cycles == 1:

    rule measure:
        input:
            **get_step_inputs("measure"),
        output:
            result=f"{RESULTS}/trials/{{trial}}/measure.json",
        log:
            f"{LOGS}/measure/{{trial}}.log",
        priority: get_step_priority("measure")
        retries: CFG.failures.retries.measure
        # on a cluster: N measurements in one job, apart from training, so that it can hold an
        # exclusive node (get_group in common.smk; profiles/slurm); cycles are not bundled
        group:
            get_group("measure")
        conda:
            "../../environment.yml"
        threads: get_threads()
        resources:
            mem_mb=2000,
            runtime=get_runtime_min("measure"),
            gpu=get_gpu,
            measure_slot=1,
        params:
            script=get_script("measure"),
            settings=get_measure_settings_hash(),
            train=get_train_option,
        shell:
            f"python {{params.script:q}} --trial {{wildcards.trial:q}} --plan {PLAN_ARG}"
            f" --log {{log:q}} --threads {{threads}} --data {DATA_ARG} {{params.train}}"
            " --output {output.result:q}"

else:

    # `measure.cycles: N` measures each trial N times; `cycle_order` picks the order through
    # job priorities (training and evaluation outrank every measurement, see common.smk).
    rule measure_cycle:
        input:
            **get_step_inputs("measure"),
        output:
            result=f"{RESULTS}/trials/{{trial}}/cycles/measure.{{cycle}}.json",
        log:
            f"{LOGS}/measure/{{trial}}.cycle{{cycle}}.log",
        priority: get_cycle_priority
        retries: CFG.failures.retries.measure
        conda:
            "../../environment.yml"
        threads: get_threads()
        resources:
            mem_mb=2000,
            runtime=get_runtime_min("measure"),
            gpu=get_gpu,
            measure_slot=1,
        params:
            script=get_script("measure"),
            settings=get_measure_settings_hash(),
            train=get_train_option,
        shell:
            f"python {{params.script:q}} --trial {{wildcards.trial:q}} --plan {PLAN_ARG}"
            f" --log {{log:q}} --threads {{threads}} --data {DATA_ARG} {{params.train}}"
            " --cycle {wildcards.cycle:q} --output {output.result:q}"

    rule measure:
        input:
            plan=ancient(rules.plan.output.json),
            cycles=get_measure_cycles,
        output:
            result=f"{RESULTS}/trials/{{trial}}/measure.json",
        log:
            f"{LOGS}/measure/{{trial}}.log",
        localrule: True
        conda:
            "../../environment.yml"
        params:
            script=get_script("measure_aggregate"),
        shell:
            "python {params.script:q} --trial {wildcards.trial:q}"
            " --plan {input.plan:q} --log {log:q} --cycles {input.cycles:q} --output {output.result:q}"
