"""Fine-tuning, conversion and quantization: own data in, a faster model out, served by name.

One module per stage; only ``ct2_format``, ``data``, ``options``, ``store`` and ``hf_to_ct2``'s
checks work without the ``finetune`` extra (torch, transformers, peft), the rest import it lazily
or after ``require_extra`` has named what is missing.

- ``ct2_format``: read CTranslate2's ``model.bin`` into NumPy, write a Whisper back in any precision
- ``ct2_to_hf``: CTranslate2 -> ``transformers`` (model, tokenizer, features, generation config)
- ``hf_to_ct2``: ``transformers`` -> CTranslate2 with ``ctranslate2``'s converter
- ``data``: training manifests and folders, every clip checked up front
- ``options``: ``FinetuneOptions``
- ``train``: Seq2Seq training (LoRA through peft, or full), WER-based early stopping
- ``run``: ``finetune()``, the whole loop: before/after WER, export, registration
- ``store``: registering a CTranslate2 folder by name in malsori's model cache
- ``plot``: the loss/WER PNG
- ``hf_engine``, ``equality``: the same weights run by PyTorch, for comparison
"""
