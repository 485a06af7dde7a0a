# Stage 5: the ensemble of the seeds at the chosen lr; majority vote, mean logits and mean probabilities are
# scored on dev and the best is chosen (maskbench.results.ensemble).


rule ensemble:
    input:
        unpack(chosen_runs),
        chosen=CHOSEN,
    output:
        ENSEMBLE,
    run:
        from maskbench.results import ensemble

        ensemble.write_ensemble(input.runs, output[0])
