/* QA forms and scores (see qa.h): validation of a form an admin wrote, the
 * score of an auditor's answers, comment checks and calibration between
 * auditors. No I/O. */
#include "calls/qa.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return VG_EINVAL;
}

static int name_valid(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int call_qa_key_valid(const char *key)
{
    /* A letter first: GET /qa/forms/{x} reads digits as a version's id. */
    return key && key[0] >= 'a' && key[0] <= 'z' && name_valid(key, 63);
}

/* A non-empty string of at most max bytes of valid UTF-8 (it is echoed). */
static int text_ok(const json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max &&
           vg_utf8_valid(json_string_value(v), json_string_length(v));
}

/* Every member of o is among names (NULL-terminated). */
static const char *unknown_member(const json_t *o, const char *const *names)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)o, k, v) {
        int known = 0;
        for (const char *const *n = names; *n && !known; n++)
            known = strcmp(*n, k) == 0;
        if (!known)
            return k;
    }
    return NULL;
}

static int bool_member(const json_t *q, const char *name, int def, int *out)
{
    const json_t *v = json_object_get(q, name);
    if (!v) {
        *out = def;
        return VG_OK;
    }
    if (!json_is_boolean(v))
        return VG_EINVAL;
    *out = json_is_true(v);
    return VG_OK;
}

static int question_check(const json_t *q, json_t *seen, json_t **out, char *err, size_t size)
{
    static const char *const names[] = {"id", "text", "type", "na", "weight", "critical", NULL};
    const char *bad;
    if (!json_is_object(q))
        return fail(err, size, "each question is an object");
    if ((bad = unknown_member(q, names)))
        return fail(err, size, "a question has an unknown member \"%.40s\"", bad);
    const json_t *id = json_object_get(q, "id"), *text = json_object_get(q, "text");
    const json_t *type = json_object_get(q, "type"), *weight = json_object_get(q, "weight");
    if (!json_is_string(id) || !name_valid(json_string_value(id), 32))
        return fail(err, size, "a question id is 1-32 of a-z, 0-9, _ and -, starting with a "
                               "letter or digit");
    const char *qid = json_string_value(id);
    if (json_object_get(seen, qid))
        return fail(err, size, "question id \"%s\" is used twice", qid);
    if (!text_ok(text, CALL_QA_TEXT_MAX))
        return fail(err, size, "question \"%s\" needs a text of 1-%d bytes", qid,
                    CALL_QA_TEXT_MAX);
    if (!json_is_string(type) || (strcmp(json_string_value(type), "yesno") != 0 &&
                                  strcmp(json_string_value(type), "scale") != 0))
        return fail(err, size, "question \"%s\": type is \"yesno\" or \"scale\" (1-5)", qid);
    double w = 1.0;
    if (weight) {
        if (!json_is_number(weight))
            return fail(err, size, "question \"%s\": weight is a number", qid);
        w = json_number_value(weight);
        if (!(w > 0.0 && w <= CALL_QA_WEIGHT_MAX))
            return fail(err, size, "question \"%s\": weight is above 0 and at most %g", qid,
                        CALL_QA_WEIGHT_MAX);
    }
    int na = 0, critical = 0;
    if (bool_member(q, "na", 0, &na) != VG_OK || bool_member(q, "critical", 0, &critical) != VG_OK)
        return fail(err, size, "question \"%s\": na and critical are true or false", qid);
    json_object_set_new(seen, qid, json_true());
    *out = json_pack("{sO sO sO sb sf sb}", "id", id, "text", text, "type", type, "na", na,
                     "weight", w, "critical", critical);
    return VG_OK;
}

int call_qa_form_check(const json_t *sections, json_t **out, char *err, size_t size)
{
    static const char *const names[] = {"title", "questions", NULL};
    json_t *seen = json_object(), *secs = json_array();
    size_t i, j, total = 0;
    const json_t *s, *q;
    const char *bad;
    int ret = VG_OK;
    *out = NULL;
    if (!json_is_array(sections) || json_array_size(sections) == 0 ||
        json_array_size(sections) > CALL_QA_SECTIONS_MAX) {
        ret = fail(err, size, "sections is an array of 1-%d sections", CALL_QA_SECTIONS_MAX);
        goto cleanup;
    }
    json_array_foreach(sections, i, s) {
        if (!json_is_object(s)) {
            ret = fail(err, size, "each section is an object with title and questions");
            goto cleanup;
        }
        if ((bad = unknown_member(s, names))) {
            ret = fail(err, size, "a section has an unknown member \"%.40s\"", bad);
            goto cleanup;
        }
        const json_t *title = json_object_get(s, "title"), *qs = json_object_get(s, "questions");
        if (!text_ok(title, CALL_QA_TEXT_MAX)) {
            ret = fail(err, size, "section %zu needs a title of 1-%d bytes", i + 1,
                       CALL_QA_TEXT_MAX);
            goto cleanup;
        }
        if (!json_is_array(qs) || json_array_size(qs) == 0) {
            ret = fail(err, size, "section %zu needs at least one question", i + 1);
            goto cleanup;
        }
        total += json_array_size(qs);
        if (total > CALL_QA_QUESTIONS_MAX) {
            ret = fail(err, size, "a form has at most %d questions", CALL_QA_QUESTIONS_MAX);
            goto cleanup;
        }
        json_t *qout = json_array();
        json_array_foreach(qs, j, q) {
            json_t *one = NULL;
            if ((ret = question_check(q, seen, &one, err, size)) != VG_OK) {
                json_decref(qout);
                goto cleanup;
            }
            json_array_append_new(qout, one);
        }
        json_array_append_new(secs, json_pack("{sO so}", "title", title, "questions", qout));
    }
    *out = json_pack("{sO}", "sections", secs);

cleanup:
    json_decref(seen);
    json_decref(secs);
    return ret;
}

/* The points of one answer (in [0,1]), -1 for N/A; VG_EINVAL when the
 * answer does not fit the question. */
static int answer_points(const json_t *q, const json_t *a, double *points, int *failed)
{
    const char *type = json_string_value(json_object_get(q, "type"));
    int na_ok = json_is_true(json_object_get(q, "na"));
    int critical = json_is_true(json_object_get(q, "critical"));
    *failed = 0;
    if (json_is_string(a) && strcmp(json_string_value(a), "na") == 0) {
        *points = -1.0;
        return na_ok ? VG_OK : VG_EINVAL;
    }
    if (type && strcmp(type, "yesno") == 0) {
        const char *v = json_string_value(a);
        if (!v || (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0))
            return VG_EINVAL;
        *points = strcmp(v, "yes") == 0 ? 1.0 : 0.0;
        *failed = critical && *points == 0.0;
        return VG_OK;
    }
    if (!json_is_integer(a) || json_integer_value(a) < 1 || json_integer_value(a) > 5)
        return VG_EINVAL;
    json_int_t v = json_integer_value(a);
    *points = (double)(v - 1) / 4.0;
    *failed = critical && v == 1;
    return VG_OK;
}

int call_qa_score(const json_t *definition, const json_t *answers, double *score,
                  int *critical_failed, char *err, size_t size)
{
    const json_t *secs = json_object_get(definition, "sections"), *s, *q;
    size_t i, j, n_questions = 0;
    double got = 0.0, total = 0.0;
    *score = 0.0;
    *critical_failed = 0;
    if (!json_is_object(answers))
        return fail(err, size, "answers is an object of question id -> answer");
    json_array_foreach(secs, i, s) {
        json_array_foreach(json_object_get(s, "questions"), j, q) {
            const char *qid = json_string_value(json_object_get(q, "id"));
            const json_t *a = qid ? json_object_get(answers, qid) : NULL;
            double points, w = json_number_value(json_object_get(q, "weight"));
            int failed;
            n_questions++;
            if (!a)
                return fail(err, size, "question \"%s\" has no answer", qid ? qid : "?");
            if (answer_points(q, a, &points, &failed) != VG_OK)
                return fail(err, size,
                            "question \"%s\": %sanswer %s%s", qid,
                            json_is_string(a) && strcmp(json_string_value(a), "na") == 0
                                ? "N/A (na) is not allowed here; "
                                : "",
                            strcmp(json_string_value(json_object_get(q, "type")), "yesno") == 0
                                ? "\"yes\" or \"no\""
                                : "1 to 5",
                            json_is_true(json_object_get(q, "na")) ? " or \"na\"" : "");
            *critical_failed |= failed;
            if (points >= 0.0) {
                got += w * points;
                total += w;
            }
        }
    }
    if (json_object_size(answers) != n_questions)
        return fail(err, size, "answers name a question the form does not have");
    if (total <= 0.0)
        return fail(err, size, "every question is N/A: nothing to score");
    *score = *critical_failed ? 0.0 : got / total;
    /* Rounded so the figure stored is the figure shown and compared. */
    *score = round(*score * 1e6) / 1e6;
    return VG_OK;
}

static int offset_cmp(const void *a, const void *b)
{
    double x = json_number_value(json_object_get(*(json_t *const *)a, "offset_s"));
    double y = json_number_value(json_object_get(*(json_t *const *)b, "offset_s"));
    return (x > y) - (x < y);
}

int call_qa_comments_check(const json_t *comments, double duration_s, json_t **out, char *err,
                           size_t size)
{
    static const char *const names[] = {"offset_s", "text", NULL};
    json_t *items[CALL_QA_COMMENTS_MAX];
    size_t i, n = 0;
    const json_t *c;
    int ret = VG_OK;
    *out = NULL;
    if (!comments || json_is_null(comments)) {
        *out = json_array();
        return VG_OK;
    }
    if (!json_is_array(comments) || json_array_size(comments) > CALL_QA_COMMENTS_MAX)
        return fail(err, size, "comments is an array of at most %d comments",
                    CALL_QA_COMMENTS_MAX);
    json_array_foreach(comments, i, c) {
        const json_t *off = json_object_get(c, "offset_s"), *text = json_object_get(c, "text");
        const char *bad;
        if (!json_is_object(c) || (bad = unknown_member(c, names)) || !json_is_number(off) ||
            !text_ok(text, CALL_QA_COMMENT_MAX)) {
            ret = fail(err, size, "comment %zu is {\"offset_s\": seconds, \"text\": 1-%d bytes}",
                       i + 1, CALL_QA_COMMENT_MAX);
            goto cleanup;
        }
        double o = json_number_value(off);
        if (!(o >= 0.0 && o <= duration_s)) {
            ret = fail(err, size, "comment %zu: offset_s is within the evaluated range (0-%.1f s)",
                       i + 1, duration_s);
            goto cleanup;
        }
        items[n++] = json_pack("{sf sO}", "offset_s", round(o * 1000.0) / 1000.0, "text", text);
    }
    qsort(items, n, sizeof(items[0]), offset_cmp);
    *out = json_array();
    for (i = 0; i < n; i++)
        json_array_append_new(*out, items[i]);
    n = 0;

cleanup:
    for (i = 0; i < n; i++)
        json_decref(items[i]);
    return ret;
}

json_t *call_qa_calibration(const json_t *definition, const idx_qa_eval_t *e, size_t n)
{
    json_t *auditors = json_array(), *evals = json_array(), *questions = json_array();
    json_t **answers = vg_calloc(n ? n : 1, sizeof(*answers));
    const json_t *s, *q;
    size_t i, j, compared = 0, agreed = 0;
    double lo = 1.0, hi = 0.0;
    for (i = 0; i < n; i++) {
        answers[i] = json_loads(e[i].answers, 0, NULL);
        json_array_append_new(auditors, json_string(e[i].auditor));
        json_array_append_new(evals, json_pack("{sI ss sf sb}", "id", (json_int_t)e[i].id,
                                               "auditor", e[i].auditor, "score", e[i].score,
                                               "critical_failed", e[i].critical_failed));
        lo = e[i].score < lo ? e[i].score : lo;
        hi = e[i].score > hi ? e[i].score : hi;
    }
    json_array_foreach(json_object_get(definition, "sections"), i, s) {
        json_array_foreach(json_object_get(s, "questions"), j, q) {
            const char *qid = json_string_value(json_object_get(q, "id"));
            json_t *by = json_object();
            const json_t *first = NULL;
            int agree = 1, count = 0;
            for (size_t k = 0; qid && k < n; k++) {
                json_t *a = answers[k] ? json_object_get(answers[k], qid) : NULL;
                if (!a)
                    continue;
                json_object_set(by, e[k].auditor, a);
                agree &= !first || json_equal((json_t *)first, a);
                first = first ? first : a;
                count++;
            }
            if (count >= 2) {
                compared++;
                agreed += agree;
            }
            json_array_append_new(questions,
                                  json_pack("{ss* sO so so}", "id", qid, "text",
                                            json_object_get(q, "text"), "answers", by, "agree",
                                            count >= 2 ? json_boolean(agree) : json_null()));
        }
    }
    for (i = 0; i < n; i++)
        json_decref(answers[i]);
    free(answers);
    return json_pack("{so so so so so}", "auditors", auditors, "evaluations", evals, "questions",
                     questions, "agreement",
                     compared ? json_real((double)agreed / (double)compared) : json_null(),
                     "score_spread", n >= 2 ? json_real(round((hi - lo) * 1e6) / 1e6)
                                            : json_null());
}
