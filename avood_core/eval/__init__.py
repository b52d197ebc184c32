"""After routing: metrics (S, U, HM, ZSL, gate AUROC), reports, plots and the ablation drivers."""
