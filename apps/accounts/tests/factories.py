import factory

from apps.accounts.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("primary_email",)

    primary_email = factory.Sequence(lambda n: f"user{n}@example.com")
    display_name = factory.Faker("name")
