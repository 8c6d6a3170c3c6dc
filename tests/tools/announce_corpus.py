#!/usr/bin/env python3
"""Builds the announcement-check corpus: synthetic calls (8 kHz WAV, A-law,
mu-law or PCM) with and without the recording announcement, each under one
difficulty, with the ground truth in corpus.tsv (file, truth, difficulty).

Speech comes from espeak-ng (Russian voice), the processing from sox. The
reference announcement is written at espeak-ng's own rate (22.05 kHz) as
ref.wav, so the loader's resampling is exercised too. Seeded: the same
--seed and --calls give the same files.

Difficulties (each with the announcement -> truth present, and without it ->
absent: other speech, half of it Russian phrased like the announcement):
  clean (PCM), alaw, mulaw, gain+12, gain-12 (dB), noise10 (pink noise at
  10 dB SNR), late (the announcement starts 3 s to the end of the window),
  speed+3, speed-3 (2-3 % faster/slower, pitch too, as a drifting clock);
  cut40 (only the first 40 % of the announcement, then other speech:
  partial); short (a call shorter than the announcement: unknown).
All but clean, alaw and mulaw are G.711 too (A-law and mu-law alternately).

usage: announce_corpus.py --out DIR [--calls 400] [--seed 1] [--window 20]
Python standard library only.
"""
import argparse
import array
import concurrent.futures
import math
import os
import random
import subprocess
import sys
import wave

RATE = 8000

ANNOUNCEMENT = ("Здравствуйте! Вы позвонили в контактный центр. "
                "Для контроля качества обслуживания ваш разговор записывается.")
# Other speech: agents and customers, and IVR prompts phrased like the
# announcement, some in the announcement's own voice (the hard negatives:
# they share words, even whole phrases, but not its opening).
SIMILAR = [
    "Добрый день! Вы позвонили в службу поддержки. Для улучшения качества обслуживания оцените наш разговор.",
    "Здравствуйте! Ваш звонок очень важен для нас. Все операторы заняты, пожалуйста, ожидайте ответа.",
    "Добрый вечер! Вы позвонили в контактный центр. Наш разговор может быть использован для обучения.",
    "Внимание! Для контроля качества обслуживания оставайтесь на линии, оператор скоро ответит.",
]
OTHER = [
    "Добрый день, меня зовут Анна, чем я могу вам помочь?",
    "Я хотел бы узнать остаток по моей карте и последние операции.",
    "Назовите, пожалуйста, номер договора и дату рождения.",
    "Одну минуту, я проверю информацию в системе.",
    "Спасибо за ожидание, ваша заявка уже передана специалисту.",
    "Нет, я звоню по поводу кредита, который оформил в прошлом месяце.",
    "Подскажите, пожалуйста, до какого часа работает отделение на Ленина?",
    "Хорошо, тогда я перезвоню завтра утром, всего доброго.",
    "Платёж поступит в течение трёх рабочих дней, не беспокойтесь.",
    "Алло, вы меня слышите? Связь очень плохая.",
    "Good afternoon, I am calling about my account statement.",
    "Could you please repeat the reference number?",
]
VOICES = ["ru", "ru+m3", "ru+f2", "ru+f4", "ru+m5"]
PLAIN = ["clean", "alaw", "mulaw", "gain+12", "gain-12", "noise10", "late", "speed+3", "speed-3"]
BASE_PEAK_DB = -14.0


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def speak(text, voice, speed, path):
    run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", path, text])


def read8k(path):
    """A WAV resampled to 8 kHz mono 16-bit by sox: its samples."""
    tmp = path + ".8k.wav"
    run(["sox", path, "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed", tmp])
    with wave.open(tmp) as w:
        a = array.array("h", w.readframes(w.getnframes()))
    os.unlink(tmp)
    if sys.byteorder != "little":
        a.byteswap()
    return trim_silence(a)


def trim_silence(a):
    lo, hi = 0, len(a)
    while lo < hi and abs(a[lo]) < 64:
        lo += 1
    while hi > lo and abs(a[hi - 1]) < 64:
        hi -= 1
    return a[lo:hi]


def rms(a):
    return math.sqrt(sum(x * x for x in a) / max(1, len(a))) / 32768.0


def silence(seconds):
    return array.array("h", bytes(2 * int(seconds * RATE)))


def write_pcm(path, a):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(a.tobytes())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--window", type=float, default=20.0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rnd = random.Random(args.seed)
    tmpdir = os.path.join(args.out, "src")
    os.makedirs(tmpdir, exist_ok=True)

    ref = os.path.join(args.out, "ref.wav")
    speak(ANNOUNCEMENT, "ru", 150, ref)
    ann = read8k(ref)
    ann_s = len(ann) / RATE
    cut = ann[: int(len(ann) * 0.4)]

    def pool(texts, tag):
        out = []
        for i, t in enumerate(texts):
            p = os.path.join(tmpdir, "%s%d.wav" % (tag, i))
            speak(t, VOICES[i % len(VOICES)], 140 + 10 * (i % 4), p)
            out.append(read8k(p))
        return out
    similar = pool(SIMILAR, "sim")
    other = pool(OTHER, "oth")
    # the same voice as the announcement saying the similar prompts: hardest
    similar += [read8k_same for read8k_same in pool_same(similar_texts=SIMILAR, tmpdir=tmpdir)]

    pink = os.path.join(tmpdir, "pink.wav")
    run(["sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", pink, "synth", "10", "pinknoise"])
    with wave.open(pink) as w:
        pink_rms = rms(array.array("h", w.readframes(w.getnframes())))

    block = [(d, "present") for d in PLAIN] + [(d, "absent") for d in PLAIN] + \
        [("cut40", "partial"), ("cut40", "partial"), ("short", "unknown")]
    rows, jobs = [], []
    for i in range(args.calls):
        diff, truth = block[i % len(block)]
        if diff in ("clean",):
            law = "pcm"
        elif diff in ("alaw", "mulaw"):
            law = diff
        else:
            law = "alaw" if (i // len(block)) % 2 == 0 else "mulaw"
        parts = []
        if diff == "late":
            start = rnd.uniform(3.0, args.window - 0.3)
            # the lead: someone talking (an IVR menu, a transfer) then a pause
            lead = array.array("h")
            while len(lead) / RATE < start - 1.5:
                u = rnd.choice(other)
                lead += u[: int((start - 1.0 - len(lead) / RATE) * RATE)]
                lead += silence(0.5)
            parts.append(lead + silence(max(0.0, start - len(lead) / RATE)))
        else:
            parts.append(silence(rnd.uniform(0.2, 1.5)))
        if truth == "present":
            speech = ann
        elif truth == "partial":
            speech = cut
        elif truth == "unknown":
            speech = ann[: int(len(ann) * rnd.uniform(0.3, 0.8))]
        else:
            speech = rnd.choice(similar) if rnd.random() < 0.5 else rnd.choice(other)
        parts.append(speech)
        if truth != "unknown":
            # then the conversation, long enough to fill the window
            need = (args.window + ann_s + 2.0) - sum(len(p) for p in parts) / RATE
            while need > 0:
                parts.append(silence(rnd.uniform(0.3, 1.2)))
                u = rnd.choice(other)
                parts.append(u)
                need -= len(u) / RATE + 0.8
        clean = array.array("h")
        for p in parts:
            clean += p
        name = "call%04d.wav" % i
        src = os.path.join(tmpdir, "clean%04d.wav" % i)
        write_pcm(src, clean)
        out = os.path.join(args.out, name)
        enc = {"pcm": ["-e", "signed", "-b", "16"], "alaw": ["-e", "a-law", "-b", "8"],
               "mulaw": ["-e", "mu-law", "-b", "8"]}[law]
        peak = BASE_PEAK_DB + {"gain+12": 12.0, "gain-12": -12.0}.get(diff, 0.0)
        effects = []
        if diff in ("speed+3", "speed-3"):
            s = 1.0 + (1 if diff == "speed+3" else -1) * rnd.uniform(0.02, 0.03)
            effects += ["speed", "%.4f" % s, "rate", str(RATE)]
        effects += ["gain", "-n", "%.1f" % peak]
        if diff == "noise10":
            # 10 dB under the speech's RMS (measured on the speech alone)
            vol = rms(speech) / 10 ** (10 / 20.0) / pink_rms
            dur = len(clean) / RATE
            cmd = ["sox", "-m", "-v", "1", src, "-v", "%.5f" % vol,
                   "|sox -n -r %d -c 1 -b 16 -p synth %.3f pinknoise" % (RATE, dur)]
        else:
            cmd = ["sox", src]
        jobs.append((cmd + ["-r", str(RATE), "-c", "1"] + enc + [out] + effects, src))
        rows.append("%s\t%s\t%s" % (name, truth, diff))
    # the random draws are all made above, in order: running sox in
    # parallel keeps the corpus the same for a seed

    def render(job):
        run(job[0])
        os.unlink(job[1])
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        list(ex.map(render, jobs))
    with open(os.path.join(args.out, "corpus.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print("%d calls in %s (announcement %.1f s)" % (len(rows), args.out, ann_s))


def pool_same(similar_texts, tmpdir):
    out = []
    for i, t in enumerate(similar_texts):
        p = os.path.join(tmpdir, "same%d.wav" % i)
        speak(t, "ru", 150, p)
        out.append(read8k(p))
    return out


if __name__ == "__main__":
    main()
