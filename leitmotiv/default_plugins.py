"""The built-in plugin: leitmotiv's default implementations, registered through the
same hooks a third-party plugin uses."""

from leitmotiv.hookspecs import hookimpl


@hookimpl
def leitmotiv_featurizers():
    from leitmotiv.features import GmmFeaturizer

    return [GmmFeaturizer]


@hookimpl
def leitmotiv_divergences():
    from leitmotiv.jensen_shannon import JensenShannon

    return [JensenShannon]


@hookimpl
def leitmotiv_clusterers():
    from leitmotiv.cluster import AffinityPropagation
    from leitmotiv.sparse_cluster import SparseAffinityPropagation

    return [AffinityPropagation, SparseAffinityPropagation]
