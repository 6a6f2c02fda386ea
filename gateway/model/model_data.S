/* Embeds the compact R4 model (profiles/r4/model.txt) into the binary.
 * TSG_MODEL_FILE is set by gateway/CMakeLists.txt. */
    .section .rodata
    .global tsg_r4_model_text
    .global tsg_r4_model_text_end
    .balign 16
tsg_r4_model_text:
    .incbin TSG_MODEL_FILE
tsg_r4_model_text_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
