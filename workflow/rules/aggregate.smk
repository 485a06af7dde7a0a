# Stage 4: mean ± std over the seeds at the chosen lr (dev and test) and the runs' artefact sizes
# (maskbench.results.aggregate, maskbench.training.sizes).


rule aggregate:
    input:
        unpack(chosen_runs),
        chosen=CHOSEN,
    output:
        AGGREGATE,
    log:
        log_file("aggregate", "{model}/{task}/{method}"),
    run:
        from maskbench.results import aggregate

        logged_step(log, aggregate.write_aggregate, input.runs, output[0])
