"""Dataset registry, TFRecord builders and the tf.data input pipeline."""
