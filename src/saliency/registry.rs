//! The one table of the criteria: each criterion's name in the config and in every output,
//! what it is, and the value that scores with it. The config's [`crate::config::CriterionName`]
//! (its variants, their order, names and docs) and [`super::criterion`] are both generated from
//! it, so a new criterion is its own file and one line here.

/// Calls the macro `$then` with the table: `Variant = "name" => constructor,`, each with its
/// doc. The constructors are tokens, resolved where `$then` expands them (in `saliency`).
macro_rules! criteria {
    ($then:ident) => {
        $then! {
            /// DFPC's BGSC: the data-free bound on the ℓ1 change of each consumer's output,
            /// producer→consumer pairs taken in graph order.
            Dfpc = "dfpc" => dfpc::Dfpc(PairOrder::Graph),
            /// DFPC's BGSC with the public code's pair rule: consumers whose name sorts after
            /// the producer's.
            DfpcNameOrder = "dfpc-name-order" => dfpc::Dfpc(PairOrder::Name),
            /// The ℓ1 norm of each producer's filter.
            L1 = "l1" => norm::FilterNorm::L1,
            /// The ℓ2 norm of each producer's filter.
            L2 = "l2" => norm::FilterNorm::L2,
            /// |γ| of each BatchNorm among the DFC's channel-wise layers.
            BnScale = "bn-scale" => bn_scale::BnScale,
            /// Uniform in [0, 1) from the seed and the DFC's position: the baseline.
            Random = "random" => random::Random,
            /// The mean activation where the DFC's consumers read it.
            ActMean = "act-mean" => activation::ActivationStat::Mean,
            /// The activation's standard deviation where the DFC's consumers read it.
            ActStd = "act-std" => activation::ActivationStat::Std,
            /// The share of positive activations (one minus APoZ).
            Apoz = "apoz" => activation::ActivationStat::Apoz,
            /// Molchanov et al. (2017): |activation × gradient|, averaged over examples.
            Taylor = "taylor" => taylor::Taylor,
            /// Second order with squared gradients as the Hessian's diagonal (OBD / Fisher).
            Obd = "obd" => obd::Obd,
            /// TVSPrune: the least distance between class-conditional Gaussians (Hellinger).
            Tvs = "tvs" => tvs::Tvs { mean_only: false },
            /// TVSPrune's mean-only variant, as the public code computes it.
            TvsMean = "tvs-mean" => tvs::Tvs { mean_only: true },
        }
    };
}

pub(crate) use criteria;
