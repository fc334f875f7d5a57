# snakesweep's entry: `snakemake --cores 2` from this directory runs the sweep in config/config.yaml.
# The workflow itself is workflow/Snakefile (where the Snakemake catalog and snakedeploy look).


include: "workflow/Snakefile"


# Snakemake keeps an included file's default target to itself: name it again here.
rule default:
    default_target: True
    input:
        rules.all.input,
    localrule: True
