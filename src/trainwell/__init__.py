"""trainwell: train deep neural networks well."""
