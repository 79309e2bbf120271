"""Generate the structured training corpora for charlstm.

Each generated corpus isolates one thing a character-level LSTM can learn:

brackets.txt
    One balanced bracket expression per line over ``()[]{}``, nesting depth
    up to 8. To close every bracket with the right partner the model has to
    keep a stack in its hidden state; the share of balanced lines it
    samples is a direct measure of that memory.

nesting.txt
    The same kind of lines, deeper and longer: nesting depth up to 16, up to
    160 characters, and five times as much text. Many closing brackets are
    20 to 80 characters after their opening one: far enough that a vanilla
    RNN's gradient has vanished, so this is the text on which an LSTM's cell
    state pays (docs/understanding.md, "The race").

arithmetic.txt
    Lines such as ``17+25=42``, ``803-19=784`` and ``12*7=84`` (operands of
    up to three digits, results always correct). The model should learn the
    line format at once and, with more training, some of the digit-level
    rules (carries, borrows, result lengths).

unicode.txt
    Short sentences in French, German, Spanish, Norwegian, Greek, Russian,
    Japanese and Chinese, plus small multilingual glossary lines and a few
    emoji, one per line, built from the word lists below. It exercises
    multi-byte characters and a larger vocabulary (fewer than 300 distinct
    characters).

``lighthouse.txt`` in the same folder is hand-written prose and is not
produced by this script. All word lists and templates here were written for
this project.

Usage::

    python corpora/generate.py            # seed 0
    python corpora/generate.py --seed 7

The files are written to the folder containing this script. Each corpus uses
its own ``random.Random(seed)``, so the same seed always gives byte-identical
output.
"""

import argparse
import operator
import random
import re
from collections.abc import Callable
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# brackets.txt

BRACKET_PAIRS: dict[str, str] = {"(": ")", "[": "]", "{": "}"}
MAX_DEPTH = 8
MAX_BRACKET_PAIRS = 40  # longest line: 80 characters
NESTING_DEPTH = 16
NESTING_PAIRS = 80  # longest line: 160 characters


def bracket_line(
    rng: random.Random,
    max_depth: int = MAX_DEPTH,
    max_pairs: int = MAX_BRACKET_PAIRS,
    p_open_range: tuple[float, float] = (0.3, 0.6),
) -> str:
    """Return one random balanced bracket expression."""
    length = 2 * rng.randint(1, max_pairs)
    p_open = rng.uniform(*p_open_range)  # higher values give deeper nesting
    openers = list(BRACKET_PAIRS)
    stack: list[str] = []
    chars: list[str] = []
    for position in range(length):
        remaining = length - position
        can_open = len(stack) < max_depth and len(stack) + 1 < remaining
        if stack and (not can_open or rng.random() >= p_open):
            chars.append(BRACKET_PAIRS[stack.pop()])
        else:
            opener = rng.choice(openers)
            stack.append(opener)
            chars.append(opener)
    return "".join(chars)


def bracket_depth(line: str) -> int:
    """Return the maximum nesting depth of a balanced line, or -1 if unbalanced."""
    stack: list[str] = []
    deepest = 0
    for char in line:
        if char in BRACKET_PAIRS:
            stack.append(BRACKET_PAIRS[char])
            deepest = max(deepest, len(stack))
        elif not stack or stack.pop() != char:
            return -1
    return deepest if not stack else -1


def check_bracket_line(line: str, max_depth: int = MAX_DEPTH) -> None:
    depth = bracket_depth(line)
    assert 1 <= depth <= max_depth, f"unbalanced or too deep: {line!r}"


def nesting_line(rng: random.Random) -> str:
    """Return one deep, long balanced bracket expression (nesting.txt)."""
    return bracket_line(rng, NESTING_DEPTH, NESTING_PAIRS, (0.45, 0.6))


def check_nesting_line(line: str) -> None:
    check_bracket_line(line, NESTING_DEPTH)


# --------------------------------------------------------------------------
# arithmetic.txt

OPERATORS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
EQUATION = re.compile(r"(\d{1,3})([-+*])(\d{1,3})=(\d+)")


def operand(rng: random.Random) -> int:
    """Return a number with 1, 2 or 3 digits, each length equally likely."""
    digits = rng.randint(1, 3)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def arithmetic_line(rng: random.Random) -> str:
    """Return one equation such as ``803-19=784``; results are never negative."""
    symbol = rng.choice(list(OPERATORS))
    a, b = operand(rng), operand(rng)
    if symbol == "-" and a < b:
        a, b = b, a
    return f"{a}{symbol}{b}={OPERATORS[symbol](a, b)}"


def check_arithmetic_line(line: str) -> None:
    match = EQUATION.fullmatch(line)
    assert match, f"malformed equation: {line!r}"
    a, symbol, b, result = match.groups()
    assert OPERATORS[symbol](int(a), int(b)) == int(result), f"wrong: {line!r}"


# --------------------------------------------------------------------------
# unicode.txt
#
# Each language has a format string and four slot lists: subject, verb,
# object and time phrase (the time phrase may be empty). Every combination
# is a grammatical, if sometimes whimsical, sentence.

SENTENCES: dict[str, tuple[str, list[list[str]]]] = {
    "fr": (
        "{0} {1} {2}{3}.",
        [
            ["Le gardien", "Le pêcheur", "Le garçon", "La mouette", "Ma sœur"],
            ["regarde", "aime", "dessine", "cherche", "écoute"],
            ["la mer", "le phare", "la forêt", "l'étoile", "le bateau", "la côte"],
            ["", " ce matin", " à midi", " après l'orage", " en été", " près de la fenêtre"],
        ],
    ),
    "de": (
        "{0} {1} {2}{3}.",
        [
            ["Der Wächter", "Die Möwe", "Der Fischer", "Das Mädchen", "Der alte Bär"],
            ["sieht", "liebt", "malt", "sucht", "hört"],
            [
                "das Meer",
                "den Leuchtturm",
                "die Brücke",
                "den Schnee",
                "die Küste",
                "das große Schiff",
            ],
            ["", " am Morgen", " nach dem Sturm", " im Frühling", " im Süden", " auf der Straße"],
        ],
    ),
    "es": (
        "{0} {1} {2}{3}.",
        [
            [
                "El farero",
                "La gaviota",
                "El pescador",
                "La niña",
                "Mi abuela",
                "El señor Muñoz",
            ],
            ["mira", "ama", "dibuja", "busca", "escucha"],
            ["el mar", "la montaña", "el faro", "la canción", "el barco pequeño", "la isla"],
            ["", " por la mañana", " después de la tormenta", " en otoño", " junto al río"],
        ],
    ),
    "no": (
        "{0} {1} {2}{3}.",
        [
            ["Fyrvokteren", "Måken", "Fiskeren", "Jenta", "Læreren", "Bjørnen"],
            ["ser", "elsker", "tegner", "leter etter", "hører"],
            ["havet", "fyret", "øya", "båten", "skogen", "nordlyset"],
            ["", " om morgenen", " etter stormen", " om vinteren", " i dag", " fra fjellet"],
        ],
    ),
    "el": (
        "{0} {1} {2}{3}.",
        [
            ["Ο φύλακας", "Ο ψαράς", "Η μητέρα", "Το παιδί", "Ο γλάρος"],
            ["βλέπει", "αγαπά", "ζωγραφίζει", "ψάχνει", "ακούει"],
            ["τη θάλασσα", "τον φάρο", "το πλοίο", "το νησί", "τον ουρανό", "τα αστέρια"],
            ["", " το πρωί", " μετά την καταιγίδα", " το καλοκαίρι", " κάθε βράδυ"],
        ],
    ),
    "ru": (
        "{0} {1} {2}{3}.",
        [
            ["Смотритель", "Рыбак", "Моя сестра", "Старый моряк", "Чайка", "Девочка"],
            ["видит", "любит", "рисует", "ищет", "слушает"],
            ["море", "маяк", "корабль", "остров", "звёзды", "лодку", "волну"],
            ["", " утром", " после шторма", " зимой", " каждый вечер", " с берега"],
        ],
    ),
    "ja": (
        "{3}{0}は{2}を{1}。",
        [
            ["灯台守", "漁師", "少女", "かもめ", "祖母"],
            ["見ています", "描いています", "探しています"],
            ["海", "灯台", "船", "島", "星", "月"],
            ["", "朝、", "夜、", "嵐の後、", "冬に、"],
        ],
    ),
    "zh": (
        "{3}{0}{1}{2}。",
        [
            ["灯塔看守人", "渔夫", "小女孩", "海鸥", "我的奶奶"],
            ["看着", "画着", "寻找", "喜欢"],
            ["大海", "灯塔", "小船", "星星", "月亮", "小岛"],
            ["", "早上", "晚上", "暴风雨过后，", "冬天"],
        ],
    ),
}

# An English concept, then its translations in the order of SENTENCES.
GLOSSARY: list[tuple[str, ...]] = [
    ("sea", "la mer", "das Meer", "el mar", "havet", "η θάλασσα", "море", "海", "大海"),
    ("lighthouse", "le phare", "der Leuchtturm", "el faro", "fyret", "ο φάρος", "маяк", "灯台", "灯塔"),
    ("star", "l'étoile", "der Stern", "la estrella", "stjerna", "το αστέρι", "звезда", "星", "星星"),
    ("moon", "la lune", "der Mond", "la luna", "månen", "το φεγγάρι", "луна", "月", "月亮"),
    ("ship", "le navire", "das Schiff", "el barco", "skipet", "το πλοίο", "корабль", "船", "船"),
    ("island", "l'île", "die Insel", "la isla", "øya", "το νησί", "остров", "島", "岛"),
    ("wind", "le vent", "der Wind", "el viento", "vinden", "ο άνεμος", "ветер", "風", "风"),
    ("fish", "le poisson", "der Fisch", "el pez", "fisken", "το ψάρι", "рыба", "魚", "鱼"),
    ("bird", "l'oiseau", "der Vogel", "el pájaro", "fuglen", "το πουλί", "птица", "鳥", "鸟"),
    ("winter", "l'hiver", "der Winter", "el invierno", "vinteren", "ο χειμώνας", "зима", "冬", "冬天"),
]

PHRASES: list[str] = [
    "Ça va? Très bien, merci.",
    "Grüß dich! Schönes Wetter heute.",
    "¿Dónde está el faro? ¡Allí, en la isla!",
    "Tusen takk! Ha det bra.",
    "Καλημέρα! Τι κάνεις;",
    "Привет! Как дела?",
    "Спокойной ночи.",
    "おはようございます。",
    "ありがとう、またね。",
    "你好吗？我很好。",
    "晚安，明天见。",
]

EMOJI: list[str] = ["🌊", "⭐", "🌙", "🐟", "⛵", "🐦"]
MAX_DISTINCT_UNICODE = 300


def unicode_line(rng: random.Random) -> str:
    """Return a sentence, a glossary line or a set phrase, sometimes with emoji."""
    kind = rng.random()
    if kind < 0.75:
        template, slots = SENTENCES[rng.choice(list(SENTENCES))]
        line = template.format(*(rng.choice(words) for words in slots))
    elif kind < 0.92:
        concept, *translations = rng.choice(GLOSSARY)
        chosen = sorted(rng.sample(range(len(translations)), rng.randint(3, 5)))
        line = f"{concept}: " + " · ".join(translations[i] for i in chosen)
    else:
        line = rng.choice(PHRASES)
    if rng.random() < 0.15:
        line += " " + rng.choice(EMOJI)
    return line


def check_unicode_line(line: str) -> None:
    assert line and line == line.strip(), f"bad unicode line: {line!r}"


# --------------------------------------------------------------------------
# driver


def build_corpus(
    seed: int,
    make_line: Callable[[random.Random], str],
    check_line: Callable[[str], None],
    target_chars: int,
) -> str:
    """Generate checked lines until the text reaches ``target_chars`` characters."""
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    while size < target_chars:
        line = make_line(rng)
        check_line(line)
        lines.append(line)
        size += len(line) + 1  # the newline
    return "\n".join(lines) + "\n"


CORPORA: dict[str, tuple[Callable[[random.Random], str], Callable[[str], None], int]] = {
    "brackets.txt": (bracket_line, check_bracket_line, 60_000),
    "nesting.txt": (nesting_line, check_nesting_line, 300_000),
    "arithmetic.txt": (arithmetic_line, check_arithmetic_line, 60_000),
    "unicode.txt": (unicode_line, check_unicode_line, 20_000),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Regenerate brackets.txt, nesting.txt, arithmetic.txt and unicode.txt next to this script."
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)

    for name, (make_line, check_line, target_chars) in CORPORA.items():
        text = build_corpus(args.seed, make_line, check_line, target_chars)
        lines = text.count("\n")
        distinct = len(set(text))
        if name == "unicode.txt":
            assert distinct < MAX_DISTINCT_UNICODE, f"{name}: {distinct} distinct characters"
        path = OUT_DIR / name
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {name}: {lines} lines, {len(text)} characters, {distinct} distinct")


if __name__ == "__main__":
    main()
