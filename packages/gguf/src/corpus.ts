/**
 * Embedded training corpus for the tiny BPE vocabulary: a few paragraphs in each of the six
 * languages SmolLM3 supports (English, French, Spanish, German, Italian, Portuguese), with
 * their accents and special letters, plus code, JSON and numbers. Written for this project;
 * changing it changes the trained vocabulary (bump TINY_MODEL_GENERATOR_VERSION).
 */

export const CORPUS_ENGLISH = `The quick brown fox jumps over the lazy dog. A distributed inference cluster serves many users at once: each request is routed to a worker that already holds the right prefix in its cache, which saves time and energy.
When the weather is nice, we like to walk along the river and talk about books, music and the history of the old town. Children play in the park while their parents read the newspaper.
It's a small model, but it's ours. They're testing the tokenizer; we've seen that it works, and you'll see it too. I'm sure the results won't disappoint anyone who'd try it.
Language models predict the next token from the previous tokens. Training requires data, compute and patience; inference requires memory, bandwidth and careful scheduling of requests.
Please write a short summary of the meeting, including the decisions, the open questions and the next steps for the team.
The scheduler keeps a table of which worker holds which prefix. When a new conversation arrives, it looks for the longest matching prefix, checks the load of each worker, and then decides where the request should go. If no worker has the prefix, the request goes to the least busy one.
Yesterday the team discussed the results of the benchmark. The throughput was higher than expected, but the latency of the first token was still too long for some users. Everyone agreed that the next release should focus on streaming, caching and better monitoring.
Reading is one of the best ways to learn. Many people read before going to sleep, others read on the train in the morning. Some prefer novels, some prefer history, and some read the news every day to understand what is happening in the world.`;

export const CORPUS_FRENCH = `Le renard brun rapide saute par-dessus le chien paresseux. Où est la bibliothèque ? Elle se trouve près de l'église, à côté du café où l'on sert des crêpes.
Cet été, nous sommes allés à la plage avec nos élèves ; il faisait très chaud et la mer était calme. Ça a été une journée inoubliable, pleine de rires et de découvertes.
Les modèles de langue prédisent le mot suivant à partir du contexte. L'entraînement nécessite beaucoup de données, et l'inférence doit être rapide, économe et fiable.
Voilà pourquoi nous préférons une architecture simple : un serveur, des travailleurs, et une file d'attente. Noël approche ; le garçon reçoit un cœur en chocolat et une lettre de sa sœur.
Qu'est-ce que tu en penses ? Je pense qu'il faut être prudent, mais aussi ambitieux. Déjà, la première étape est réussie !
Le planificateur garde une table des préfixes que chaque travailleur possède déjà. Quand une nouvelle conversation arrive, il cherche le plus long préfixe commun, vérifie la charge de chaque machine, puis décide où envoyer la requête.
Hier, l'équipe a présenté les résultats des mesures. Le débit était meilleur que prévu, mais la latence du premier mot restait trop élevée pour certains utilisateurs. Tout le monde a été d'accord : la prochaine version devra améliorer la mémoire, la sécurité et la surveillance.
La lecture est une des meilleures façons d'apprendre. Beaucoup de gens lisent le soir avant de dormir, d'autres lisent dans le métro le matin. Certains préfèrent les romans, d'autres l'histoire, et d'autres encore lisent le journal chaque jour pour comprendre le monde.`;

export const CORPUS_SPANISH = `El veloz murciélago hindú comía feliz cardillo y kiwi. La cigüeña tocaba el saxofón detrás del palenque de paja.
¿Dónde está la estación de tren? ¡Qué día tan bonito! Mañana vamos a la montaña con mis amigos y después comeremos paella en el pueblo.
Los modelos de lenguaje aprenden patrones a partir de muchísimos textos. La información se divide en fragmentos llamados tokens, y cada token tiene un número.
El niño pequeño tenía sueño, así que su mamá le cantó una canción. Él sonrió, cerró los ojos y se durmió en un instante.
España y Latinoamérica comparten el idioma, pero cada región tiene su acento, su vocabulario y su música. Además, la educación pública es muy importante.
El planificador mantiene una tabla con los prefijos que cada trabajador ya tiene en memoria. Cuando llega una nueva conversación, busca el prefijo común más largo, comprueba la carga de cada máquina y después decide adónde enviar la petición.
Ayer el equipo presentó los resultados de las pruebas. El rendimiento fue mejor de lo esperado, pero la latencia del primer token todavía era demasiado alta para algunos usuarios. Todos estuvieron de acuerdo: la próxima versión debe mejorar la memoria, la seguridad y la supervisión.
La lectura es una de las mejores maneras de aprender. Mucha gente lee por la noche antes de dormir, otros leen en el metro por la mañana. Algunos prefieren las novelas, otros la historia, y otros leen el periódico cada día para entender lo que pasa en el mundo.`;

export const CORPUS_GERMAN = `Der schnelle braune Fuchs springt über den faulen Hund. Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.
Die Straße ist heute sehr ruhig, weil alle Geschäfte geschlossen sind. Im Frühling blühen die Bäume, und die Vögel singen früh am Morgen.
Sprachmodelle sagen das nächste Wort aus dem bisherigen Text voraus. Für das Training braucht man viele Daten; für die Inferenz braucht man schnellen Speicher und gute Planung.
Ich möchte gern ein Stück Käsekuchen und eine Tasse Kaffee, bitte. Müssen wir wirklich so früh aufstehen? Ja, der Zug fährt um sieben Uhr ab.
Grüße aus München! Die Größe der Datei beträgt ungefähr drei Megabyte, und die Übertragung dauert nur wenige Sekunden.
Der Planer führt eine Tabelle darüber, welche Präfixe jeder Arbeiter bereits im Speicher hat. Wenn eine neue Unterhaltung ankommt, sucht er das längste gemeinsame Präfix, prüft die Last jeder Maschine und entscheidet dann, wohin die Anfrage geschickt wird.
Gestern hat das Team die Ergebnisse der Messungen vorgestellt. Der Durchsatz war besser als erwartet, aber die Wartezeit auf das erste Wort war für manche Benutzer immer noch zu lang. Alle waren sich einig: Die nächste Version soll den Speicher, die Sicherheit und die Überwachung verbessern.
Lesen ist eine der besten Arten zu lernen. Viele Menschen lesen abends vor dem Schlafen, andere lesen morgens in der Bahn. Manche bevorzugen Romane, andere die Geschichte, und wieder andere lesen jeden Tag die Zeitung, um zu verstehen, was in der Welt passiert.`;

export const CORPUS_ITALIAN = `La volpe marrone veloce salta sopra il cane pigro. Perché non andiamo al mare questo fine settimana? Così possiamo riposarci un po'.
L'università si trova nel centro della città, vicino alla piazza dove c'è una fontana antica. Più tardi andremo a mangiare una pizza e un gelato.
I modelli linguistici prevedono la parola successiva a partire dal contesto. L'addestramento richiede molti dati, mentre l'inferenza deve essere veloce ed efficiente.
È già tardi, ma la città è ancora piena di gente. Lunedì, martedì e mercoledì lavoro in ufficio; giovedì e venerdì lavoro da casa.
Qual è la tua canzone preferita? La mia è una vecchia canzone napoletana che mia nonna cantava sempre in cucina.
Il pianificatore tiene una tabella dei prefissi che ogni lavoratore ha già in memoria. Quando arriva una nuova conversazione, cerca il prefisso comune più lungo, controlla il carico di ogni macchina e poi decide dove inviare la richiesta.
Ieri la squadra ha presentato i risultati delle misure. Il rendimento era migliore del previsto, ma la latenza della prima parola era ancora troppo alta per alcuni utenti. Tutti erano d'accordo: la prossima versione dovrà migliorare la memoria, la sicurezza e il monitoraggio.
La lettura è uno dei modi migliori per imparare. Molte persone leggono la sera prima di dormire, altre leggono in metropolitana la mattina. Alcuni preferiscono i romanzi, altri la storia, e altri ancora leggono il giornale ogni giorno per capire cosa succede nel mondo.`;

export const CORPUS_PORTUGUESE = `A raposa marrom rápida pula sobre o cão preguiçoso. À noite, as crianças brincam na praça enquanto os pais conversam.
Não sei se vou conseguir chegar a tempo, mas vou tentar. A informação é importante, e a comunicação também. Você já visitou Lisboa ou São Paulo?
Os modelos de linguagem preveem a próxima palavra com base no contexto. O treinamento exige muitos dados; a inferência exige memória e organização.
O coração da cidade é o mercado, onde se vendem pães, maçãs, limões e peixes frescos. Ações simples mudam o mundo, disse o avô à neta.
Obrigado pela atenção! Até amanhã, e boa sorte com as provas de matemática, física e química.
O planejador mantém uma tabela com os prefixos que cada trabalhador já tem na memória. Quando chega uma nova conversa, ele procura o prefixo comum mais longo, verifica a carga de cada máquina e depois decide para onde enviar o pedido.
Ontem a equipe apresentou os resultados das medições. O desempenho foi melhor do que o esperado, mas a latência da primeira palavra ainda era alta demais para alguns usuários. Todos concordaram: a próxima versão deve melhorar a memória, a segurança e o monitoramento.
A leitura é uma das melhores maneiras de aprender. Muitas pessoas leem à noite antes de dormir, outras leem no metrô pela manhã. Algumas preferem romances, outras a história, e outras ainda leem o jornal todos os dias para entender o que acontece no mundo.`;

export const CORPUS_CODE = `function add(a, b) {
  return a + b;
}

const config = { "model": "smollm3", "layers": 36, "hidden": 2048, "heads": 16, "kv_heads": 4, "vocab": 128256, "rope_theta": 5000000.0 };

for (let i = 0; i < 10; i++) {
  console.log(\`step \${i}: loss=\${(1 / (i + 1)).toFixed(4)}\`);
}

def fibonacci(n: int) -> int:
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)

{"id": "chatcmpl-123", "object": "chat.completion", "created": 1720000000, "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}

async function handle(request) {
  const body = await request.json();
  if (!body.messages || body.messages.length === 0) {
    return new Response(JSON.stringify({ error: "messages must not be empty" }), { status: 400 });
  }
  const result = await scheduler.route(body);
  return new Response(JSON.stringify(result), { status: 200, headers: { "content-type": "application/json" } });
}

SELECT name, COUNT(*) AS total FROM users WHERE age >= 18 GROUP BY name ORDER BY total DESC LIMIT 100;
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 2048 3.14159 2.71828 -17 1e-6 65536 131072 2025-07-08 12:30:45 +33 1 23 45 67 89 ~ 99% @user #tag $5.00 €10,50 £3`;

/** The whole corpus, languages separated by blank lines. */
export const TRAINING_CORPUS: string = [
  CORPUS_ENGLISH,
  CORPUS_FRENCH,
  CORPUS_SPANISH,
  CORPUS_GERMAN,
  CORPUS_ITALIAN,
  CORPUS_PORTUGUESE,
  CORPUS_CODE,
].join("\n\n");
