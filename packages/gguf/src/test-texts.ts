/**
 * Texts (not in the training corpus) used by tests to cross-check tokenization in the six
 * SmolLM3 languages. They avoid " ?", " !", " .", " ," and " 's"-style sequences, which
 * llama.cpp's detokenizer rewrites for `llama-bpe` (see the clean-spaces test).
 */
export const SIX_LANGUAGE_TEXTS: Readonly<Record<string, string>> = {
  english: "Hello there! It's a sunny morning; we'll meet at 10:45 near the old bridge.\nThey've said: \"don't worry\".",
  french: "Ça m'étonnerait : l'hôtel où nous logeons est à deux pas du château. Noël, cœur, œuvre, garçon, déjà vu.",
  spanish: "¿Cuántos años tienes? ¡Qué señal tan extraña! El pingüino comió añejo jamón en Logroño.",
  german: "Größere Äpfel schmecken süß; der Fußgänger überquert die Straße. Grüß Gott, Herr Müller!",
  italian: "Perché la città è così affollata? Lunedì andrò all'università, poi mangerò un po' di più.",
  portuguese: "Não há razão para preocupação: as lições de português são ótimas, e o avô já está à espera.",
  code: 'const x = { "ok": true, "n": [1, 22, 333, 4444] };\n\tif (x.n.length >= 3) {\n    return `v=${x.n[0]}`;\n}\n',
  mixed: "Emoji 😀🎉, CJK 日本語, symbols ∑∞≠ — and   multiple   spaces\r\nend",
};
